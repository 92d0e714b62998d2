"""A ``str`` that names a file is that file, at every public entry point that takes one.

Each entry point is tried with a ``str`` naming an existing file (or folder), with a
``str`` naming nothing (a :class:`PathNotFoundError` with a hint, never the name read as
text), and, where text is allowed, with text passed the explicit way. ``Index.build``
and ``Index.add`` with ``str`` folders and files are in tests/retrieval/test_index.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slmkit.agents import Trajectory, read_trajectories
from slmkit.models import (
    ChatModel,
    PathNotFoundError,
    SlmkitError,
    embedded_gguf,
    existing_path,
    load_model,
    looks_like_path,
    model_location,
    path_or_text,
)
from slmkit.retrieval import (
    Document,
    Embedder,
    Index,
    as_documents,
    document_from_text,
    load_jsonl,
    load_markdown,
    load_path,
    load_text,
)
from slmkit.simulators import SimulatedEnvironment, load_env, load_report, load_tools
from slmkit.simulators.tasks import read_tasks_jsonl
from slmkit.simulators.toolspec import text_or_file
from slmkit.training import agent_token_loss, distill_status, export_gguf, load_student, sft
from slmkit.training.sft import resolve_student
from slmkit.training.student import read_student_meta

TOOLS = [
    {
        "name": "get_order",
        "description": "Look up an order.",
        "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}},
    }
]
TRAJECTORY = Trajectory(
    id="t1",
    task={"id": "t1", "prompt": "find order 7"},
    messages=[{"role": "user", "content": "find order 7"}],
    reward=1.0,
)


@pytest.fixture()
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with one file of each kind, entered as the current directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\nInstall it.\n", encoding="utf-8")
    (tmp_path / "notes.txt").write_text("Plain notes.", encoding="utf-8")
    (tmp_path / "tasks.jsonl").write_text(
        json.dumps({"id": "a", "split": "test", "prompt": "find order 7"}) + "\n",
        encoding="utf-8",
    )
    (tmp_path / "tools.json").write_text(json.dumps(TOOLS), encoding="utf-8")
    (tmp_path / "runs.jsonl").write_text(TRAJECTORY.to_json() + "\n", encoding="utf-8")
    (tmp_path / "policy.md").write_text("Refunds take five days.", encoding="utf-8")
    return tmp_path


# --- the helpers ------------------------------------------------------------------------


def test_existing_path_takes_str_and_says_what_is_missing(files: Path) -> None:
    assert existing_path("docs", kind="folder") == Path("docs")
    assert existing_path("notes.txt", kind="file") == Path("notes.txt")
    with pytest.raises(PathNotFoundError, match=r"no tasks file at 'nope\.jsonl'") as err:
        existing_path("nope.jsonl", what="tasks file", kind="file", hint="write one")
    assert str(files) in err.value.message and "write one" in (err.value.hint or "")
    assert isinstance(err.value, FileNotFoundError) and isinstance(err.value, SlmkitError)
    with pytest.raises(PathNotFoundError, match="is a folder"):
        existing_path("docs", kind="file")
    with pytest.raises(PathNotFoundError, match="not a folder"):
        existing_path("notes.txt", kind="folder")
    with pytest.raises(PathNotFoundError, match="empty name"):
        load_path("")  # not the current folder
    for call in (existing_path, path_or_text, model_location, load_path):
        with pytest.raises(PathNotFoundError, match="NoneType None is no path") as err:
            call(None)  # type: ignore[arg-type]
        assert err.value.hint


@pytest.mark.parametrize(
    ("text", "path_like"),
    [
        ("docs/", True),
        ("notes.md", True),
        ("~/data", True),
        ("./x", True),
        ("docs", False),  # a bare word: a path only where a path is required
        ("Refunds take five days.", False),
        ("v1.2", False),
        ("two\nlines.md", False),
        ("", False),
    ],
)
def test_looks_like_path(text: str, path_like: bool) -> None:
    assert looks_like_path(text) is path_like


def test_path_or_text_reads_files_refuses_missing_names_keeps_prose(files: Path) -> None:
    assert path_or_text("policy.md") == Path("policy.md")
    assert text_or_file("policy.md") == "Refunds take five days."
    assert text_or_file("Be polite and brief.") == "Be polite and brief."
    assert text_or_file(None) == ""
    for missing in ("polcy.md", "policies/airline.md", Path("airline")):
        with pytest.raises(PathNotFoundError):
            text_or_file(missing)


def test_model_location_tells_local_paths_from_hub_ids(files: Path) -> None:
    assert model_location("docs") == Path("docs")
    assert model_location("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert model_location("gpt2") == "gpt2"
    for local in ("./student", "/no/such/model", "~/no-such-model", "a/b/c", "m.gguf"):
        with pytest.raises(PathNotFoundError, match="no model file or folder"):
            model_location(local)


# --- str names an existing file or folder: it is loaded ---------------------------------


def test_str_files_and_folders_are_loaded(files: Path, smollm: ChatModel) -> None:
    assert [d.title for d in load_path("docs")] == ["Guide"]
    assert load_text("notes.txt").text == "Plain notes."
    assert load_markdown("docs/guide.md").title == "Guide"
    assert [d.title for d in as_documents(["docs", "notes.txt"])] == ["Guide", "notes"]
    assert [t["id"] for t in read_tasks_jsonl("tasks.jsonl")] == ["a"]
    assert [t.name for t in load_tools("tools.json")[0]] == ["get_order"]
    assert [t.id for t in read_trajectories("runs.jsonl")] == ["t1"]
    assert load_report("runs.jsonl").tasks == 1
    env = SimulatedEnvironment.from_files(
        tools="tools.json", domain="policy.md", seeds="runs.jsonl", tasks="tasks.jsonl",
        model=smollm,
    )  # fmt: skip
    assert env.domain == "Refunds take five days."
    assert [t["id"] for t in env.tasks("test")] == ["a"]
    sim = load_env("sim", tools="tools.json", tasks="tasks.jsonl", model=smollm)
    assert [t["id"] for t in sim.tasks("test")] == ["a"]
    gguf = load_model(str(embedded_gguf()), cache=False)
    assert gguf.backend == "llamacpp"
    gguf.close()


def test_explicit_text_is_text(files: Path) -> None:
    docs = as_documents([document_from_text("docs"), Document("n", "N", "notes.txt")])
    assert [d.text for d in docs] == ["docs", "notes.txt"]  # not the folder, not the file


# --- str names nothing: a clear error, never text ---------------------------------------

Call = Callable[[str], Any]
MISSING: list[tuple[str, Call]] = [
    ("load_path", load_path),
    ("as_documents", as_documents),
    ("load_text", load_text),
    ("load_markdown", load_markdown),
    ("load_jsonl", load_jsonl),
    ("Index.build", lambda p: Index.build(p, embedder=Embedder())),
    ("Embedder", Embedder),
    ("read_tasks_jsonl", read_tasks_jsonl),
    ("load_tools", load_tools),
    ("read_trajectories", read_trajectories),
    ("load_report", load_report),
    ("SimulatedEnvironment.from_files", lambda p: SimulatedEnvironment.from_files(tools=p)),
    ("load_env sim", lambda p: load_env("sim", tools=p)),
    ("load_model llamacpp", lambda p: load_model(f"llamacpp:{p}", cache=False)),
    ("load_model gguf", lambda p: load_model(f"{p}.gguf", cache=False)),
    ("load_model transformers", lambda p: load_model(f"transformers:{p}", cache=False)),
    ("load_model vllm", lambda p: load_model(f"vllm:{p}", cache=False)),
    ("sft", lambda p: sft(p, out_dir="out")),
    ("agent_token_loss", lambda p: agent_token_loss("student", p)),
    ("resolve_student", resolve_student),
    ("export_gguf", export_gguf),
    ("load_student", lambda p: load_student(DEFAULT_GGUF_SPEC, p)),
    ("read_student_meta", read_student_meta),
    ("distill_status", distill_status),
]
DEFAULT_GGUF_SPEC = "llamacpp:smollm2"


@pytest.mark.parametrize(("name", "call"), MISSING, ids=[name for name, _ in MISSING])
@pytest.mark.parametrize("missing", ["./no-such-thing", "no/such/thing", "~/no-such-thing"])
def test_a_str_naming_nothing_is_a_clear_error(
    files: Path, name: str, call: Call, missing: str
) -> None:
    with pytest.raises(PathNotFoundError, match=r"no-such-thing|no/such/thing") as err:
        call(missing)
    assert err.value.hint, f"{name}: every error says what to do"
