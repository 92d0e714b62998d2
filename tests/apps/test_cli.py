"""``agentctl`` smoke tests: the installed console script, run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

AGENTCTL = Path(sys.executable).with_name("agentctl")


def agentctl(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run(
        [str(AGENTCTL), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def assert_clean_error(proc: subprocess.CompletedProcess[str], message: str) -> None:
    """Exit 2 with "error: ..." and "hint: ..." on stderr, and no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "error:" in proc.stderr and message in proc.stderr, proc.stderr
    assert "hint:" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_agentctl_is_installed() -> None:
    assert AGENTCTL.is_file(), "pip install -e . provides the agentctl console script"
    proc = agentctl("--help")
    assert proc.returncode == 0
    for command in ("models", "chat", "tools", "demo-call"):
        assert command in proc.stdout


def test_models_lists_backends_and_the_embedded_model() -> None:
    proc = agentctl("models")
    assert proc.returncode == 0, proc.stderr
    for backend in ("llamacpp", "transformers", "openai", "vllm"):
        assert backend in proc.stdout
    assert "smollm2" in proc.stdout and "SmolLM2-135M-Instruct" in proc.stdout


def test_chat_with_a_schema_prints_valid_json(tmp_path: Path) -> None:
    schema = {
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "green", "blue"]},
            "brightness": {"type": "integer", "minimum": 0, "maximum": 10},
        },
        "required": ["color", "brightness"],
        "additionalProperties": False,
    }
    path = tmp_path / "color.json"
    path.write_text(json.dumps(schema))
    proc = agentctl("chat", "Pick a color.", "--schema", str(path), "--max-tokens", "40")
    assert proc.returncode == 0, proc.stderr
    jsonschema.validate(json.loads(proc.stdout), schema)
    assert "schema valid" in proc.stderr


def test_tools_run_python() -> None:
    proc = agentctl("tools", "run", "python", "print(2**10)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1024"
    assert "isolation:" in proc.stderr


def test_tools_run_python_error_exits_1_with_the_error() -> None:
    proc = agentctl("tools", "run", "python", "1/0")
    assert proc.returncode == 1
    assert "ZeroDivisionError" in proc.stderr


def test_tools_run_calculator() -> None:
    proc = agentctl("tools", "run", "calculator", "37 * 42")
    assert proc.returncode == 0 and proc.stdout.strip() == "1554"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tools", "run", "calculator", "__import__('os')"), "unsupported element"),
        (("tools", "run", "bash", "ls"), "unknown tool 'bash'"),
        (("chat", "hi", "--model", "nosuch:model"), "cannot read model spec"),
        (("chat", "hi", "--model", "llamacpp:/no/such.gguf"), "no GGUF file at"),
        (("chat", "hi", "--schema", "/no/such/schema.json"), "cannot read schema"),
        # brackets in a message are text, not rich markup (a closing tag crashed it)
        (("chat", "hi", "--schema", "/no/[/such]/s.json"), "/no/[/such]/s.json"),
    ],
)
def test_errors_print_a_message_and_a_hint(args: tuple[str, ...], message: str) -> None:
    assert_clean_error(agentctl(*args), message)


def test_an_impossible_schema_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "impossible.json"
    path.write_text(json.dumps({"not": {"type": "string"}}))
    assert_clean_error(agentctl("chat", "hi", "--schema", str(path)), "cannot be enforced")


@pytest.mark.slow
def test_ask_refuses_what_the_index_does_not_hold_and_prints_two_verdicts(tmp_path: Path) -> None:
    """Against a few Python reference topics: Lyon's population is refused before the model
    is asked; an answerable question's quotes each print "verbatim" and "supports"."""
    from pydoc_data.topics import topics

    docs = tmp_path / "docs"
    docs.mkdir()
    for topic in ("nonlocal", "global", "assert"):
        (docs / f"{topic}.txt").write_text(topics[topic], encoding="utf-8")
    index = tmp_path / "index"
    built = agentctl("index", str(docs), "-o", str(index), "--chunk-tokens", "64")
    assert built.returncode == 0, built.stderr

    lyon = agentctl("ask", "What is the population of Lyon?", "-i", str(index))
    assert lyon.returncode == 0, lyon.stderr
    assert lyon.stdout.startswith("The sources do not say.\n"), lyon.stdout
    assert "refused: no retrieved passage is about the question" in lyon.stdout
    assert "verbatim" not in lyon.stdout and "\nSources\n" not in lyon.stdout  # nothing cited
    assert "grounded answer, 0/0 quotes verbatim" in lyon.stderr

    nonlocal_ = agentctl("ask", "What does the nonlocal statement do?", "-i", str(index))
    assert nonlocal_.returncode == 0, nonlocal_.stderr
    text = " ".join(nonlocal_.stdout.split())  # rich wraps long quote lines
    cited = text.count("verbatim (")  # each quote: one verdict per fact, in words
    assert cited >= 1 and text.count("supports its sentence (") == cited, nonlocal_.stdout
    assert "nonlocal.txt" in text.split("Retrieved, not cited")[0], nonlocal_.stdout
    assert f"{cited}/{cited} quotes verbatim" in nonlocal_.stderr, nonlocal_.stderr
