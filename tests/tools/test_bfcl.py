"""BFCL loading and AST checking on the real bfcl-eval data, and the pkgdata fetcher.

The first run downloads the pinned bfcl-eval wheel (about 2 MB) once into the cache
(``$SLMKIT_CACHE`` or ``~/.cache/slmkit``); later runs read it from there.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from slmkit.models import pkgdata
from slmkit.models.errors import DataError
from slmkit.models.pkgdata import KNOWN_PACKAGES, cache_dir, fetch_package, package_file
from slmkit.tools.bfcl import (
    BFCL_CATEGORIES,
    AstVerdict,
    BfclItem,
    check_calls,
    load_bfcl,
    reference_calls,
)

EXPECTED_COUNTS = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
}

_LOADED: dict[str, list[BfclItem]] = {}


def items(category: str) -> list[BfclItem]:
    """Each category is parsed once per test session."""
    if category not in _LOADED:
        _LOADED[category] = load_bfcl(category)
    return _LOADED[category]


def by_id(item_id: str) -> BfclItem:
    category = item_id.rsplit("_", 1)[0]
    return next(it for it in items(category) if it.id == item_id)


def _no_pip(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"pip must not run here: {args!r}")


# ----------------------------------------------------------------------------- pkgdata


def test_fetch_package_once_then_from_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    root = fetch_package("bfcl-eval")  # downloads on the very first run only
    version = KNOWN_PACKAGES["bfcl-eval"]
    assert root == cache_dir() / "pkgdata" / f"bfcl-eval-{version}"
    marker = json.loads((root / ".slmkit-pkgdata.json").read_text())
    assert marker["version"] == version and marker["file"].endswith(".whl")

    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert fetch_package("bfcl_eval") == root  # any spelling of the name
    assert fetch_package("bfcl-eval", version) == root
    found = package_file("bfcl-eval", "bfcl_eval/data/BFCL_v*_simple_python.json")
    assert found.parent.name == "data" and found.is_file()


def test_package_file_no_match_or_ambiguous_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    fetch_package("bfcl-eval")
    monkeypatch.setattr(subprocess, "run", _no_pip)
    with pytest.raises(DataError, match="no file matches"):
        package_file("bfcl-eval", "bfcl_eval/data/nothing_like_this.json")
    with pytest.raises(DataError, match="files match") as err:
        package_file("bfcl-eval", "bfcl_eval/data/BFCL_v*.json")
    assert err.value.hint


def test_unpinned_fetch_reuses_recorded_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))
    folder = tmp_path / "pkgdata" / "some-data-pkg-1.2"
    folder.mkdir(parents=True)
    (tmp_path / "pkgdata" / "some-data-pkg.version").write_text("1.2\n")
    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert fetch_package("Some_Data.Pkg") == folder


def test_bad_package_name_raises_with_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", _no_pip)
    with pytest.raises(DataError, match="not a valid PyPI package name") as err:
        fetch_package("no such package!")
    assert err.value.hint
    with pytest.raises(DataError, match="not a valid version"):
        fetch_package("bfcl-eval", "1.0; rm -rf /")


def test_unknown_package_raises_with_pip_output_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="pip could not download") as err:
        fetch_package("slmkit-no-such-package-7f3e9c", "0.0.1")
    assert "slmkit-no-such-package-7f3e9c" in err.value.message
    assert err.value.hint is not None and "SLMKIT_CACHE" in err.value.hint
    assert list((tmp_path / "pkgdata").iterdir()) == []  # no folder, no leftovers


def test_failed_unpack_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch that dies before the end never leaves a folder that looks complete."""
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))

    def corrupt_download(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / "broken_pkg-1.0-py3-none-any.whl").write_bytes(b"not a zip file")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", corrupt_download)
    with pytest.raises(DataError, match="could not unpack"):
        fetch_package("broken-pkg", "1.0")
    assert list((tmp_path / "pkgdata").iterdir()) == []
    assert not (tmp_path / "pkgdata" / "broken-pkg-1.0").exists()
    assert pkgdata.cache_dir() == tmp_path


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("category", sorted(EXPECTED_COUNTS))
def test_load_counts_and_shape(category: str) -> None:
    loaded = items(category)
    assert len(loaded) == EXPECTED_COUNTS[category]
    assert [it.id for it in loaded] == [f"{category}_{i}" for i in range(len(loaded))]
    for it in loaded:
        assert it.category == category
        assert it.messages and all(set(m) == {"role", "content"} for m in it.messages)
        assert it.messages[-1]["role"] == "user"
        assert all({"name", "description", "parameters"} <= set(f) for f in it.functions)
        if category == "irrelevance":
            assert it.answers == []
        else:
            assert it.answers and all(len(a) == 1 for a in it.answers)


def test_categories_alias_and_limit() -> None:
    assert set(BFCL_CATEGORIES) == set(EXPECTED_COUNTS)
    simple = load_bfcl("simple", limit=5)
    assert [it.id for it in simple] == [f"simple_python_{i}" for i in range(5)]
    assert simple == items("simple_python")[:5]
    assert simple[0].messages[0]["content"].startswith("Find the area of a triangle")
    with pytest.raises(ValueError, match="unknown BFCL category"):
        load_bfcl("multi_turn_base")


# ----------------------------------------------------------------------------- checker


@pytest.mark.parametrize("category", ["simple_python", "multiple", "parallel", "parallel_multiple"])
@pytest.mark.parametrize("include_optional", [False, True])
def test_ground_truth_is_accepted(category: str, include_optional: bool) -> None:
    for it in items(category):
        calls = reference_calls(it, include_optional=include_optional)
        verdict = check_calls(calls, it)
        assert verdict.correct, (it.id, verdict.reason, calls)


def test_ground_truth_built_by_hand_is_accepted() -> None:
    """The plain recipe: first allowed value of each argument, ""-able ones left out."""
    for category in ("simple_python", "multiple", "parallel"):
        for it in items(category):
            calls = []
            for answer in it.answers:
                ((name, allowed),) = answer.items()
                doc = next(f for f in it.functions if f["name"] == name)
                props = doc["parameters"]["properties"]
                required = doc["parameters"].get("required", [])
                args = {}
                for arg, values in allowed.items():
                    if "" in values and arg not in required:
                        continue
                    value = next(v for v in values if v != "")
                    kind = props[arg]["type"]
                    if kind == "dict":  # dict answers hold allowed values per key
                        value = {k: vs[0] for k, vs in value.items() if "" not in vs}
                    elif kind == "array" and props[arg]["items"]["type"] == "dict":
                        value = [{k: vs[0] for k, vs in d.items()} for d in value]
                    args[arg] = value
                calls.append({"name": name, "arguments": args})
            verdict = check_calls(calls, it)
            assert verdict.correct, (it.id, verdict.reason)


def test_simple_known_bad_variants() -> None:
    it = by_id("simple_python_0")  # calculate_triangle_area(base=10, height=5, unit="units"?)
    good: dict[str, Any] = {
        "name": "calculate_triangle_area",
        "arguments": {"base": 10, "height": 5},
    }
    assert check_calls([good], it) == AstVerdict(True, "correct call")

    def variant(**changes: Any) -> list[dict[str, Any]]:
        call = copy.deepcopy(good)
        for key, value in changes.items():
            if value is None:
                call["arguments"].pop(key)
            else:
                call["arguments"][key] = value
        return [call]

    assert check_calls(variant(unit="Units."), it).correct  # BFCL string standardisation
    cases = {
        "wrong name": [{**good, "name": "calculate_triangle_perimeter"}],
        "wrong value": variant(base=11),
        "wrong type": variant(base="10"),
        "bool for int": variant(height=True),
        "float for int": variant(height=5.0),
        "missing required": variant(height=None),
        "unknown arg": variant(color="red"),
        "wrong optional value": variant(unit="cm"),
        "two calls": [good, good],
        "no call": [],
    }
    for label, calls in cases.items():
        verdict = check_calls(calls, it)
        assert not verdict.correct, label
        assert verdict.reason, label


def test_dotted_names_may_use_underscores() -> None:
    it = by_id("simple_python_1")  # math.factorial(number=5)
    assert check_calls([{"name": "math.factorial", "arguments": {"number": 5}}], it).correct
    assert check_calls([{"name": "math_factorial", "arguments": {"number": 5}}], it).correct
    assert not check_calls([{"name": "mathfactorial", "arguments": {"number": 5}}], it).correct
    assert not check_calls([{"name": "math.factorial", "arguments": {"number": 6}}], it).correct


def test_int_accepted_for_float() -> None:
    checked = 0
    for category in ("simple_python", "multiple", "parallel"):
        for it in items(category):
            calls = reference_calls(it)
            for i, call in enumerate(calls):
                doc = next(f for f in it.functions if f["name"] == call["name"])
                for arg, value in call["arguments"].items():
                    declared = doc["parameters"]["properties"][arg]["type"]
                    if declared == "float" and isinstance(value, float) and value.is_integer():
                        as_int = copy.deepcopy(calls)
                        as_int[i]["arguments"][arg] = int(value)
                        assert check_calls(as_int, it).correct, (it.id, arg)
                        checked += 1
    assert checked >= 10


def test_dict_arguments() -> None:
    it = by_id("simple_python_94")  # update_info={"name": "John Doe", "email": ...}
    (call,) = reference_calls(it)
    assert check_calls([call], it).correct
    dict_arg = next(k for k, v in call["arguments"].items() if isinstance(v, dict))
    extra = copy.deepcopy(call)
    extra["arguments"][dict_arg]["phone"] = "555"
    missing = copy.deepcopy(call)
    missing["arguments"][dict_arg].pop(next(iter(missing["arguments"][dict_arg])))
    wrong = copy.deepcopy(call)
    wrong["arguments"][dict_arg]["name"] = "Jane Roe"
    for bad in (extra, missing, wrong):
        assert not check_calls([bad], it).correct


def test_multiple_picks_the_right_function() -> None:
    it = next(i for i in items("multiple") if len({f["name"] for f in i.functions}) > 1)
    (call,) = reference_calls(it)
    assert check_calls([call], it).correct
    other = next(f["name"] for f in it.functions if f["name"] != call["name"])
    assert not check_calls([{**call, "name": other}], it).correct
    assert not check_calls([call, call], it).correct


def test_parallel_any_order_one_to_one() -> None:
    it = next(i for i in items("parallel") if len(i.answers) >= 3)
    calls = reference_calls(it)
    assert check_calls(list(reversed(calls)), it).correct
    missing = check_calls(calls[:-1], it)
    assert not missing.correct and "expected" in missing.reason
    duplicated = check_calls([*calls[:-1], calls[0]], it)  # right count, one answer unmet
    assert not duplicated.correct and "no call matches" in duplicated.reason
    wrong = copy.deepcopy(calls)
    arg = next(iter(wrong[1]["arguments"]))
    wrong[1]["arguments"][arg] = "certainly not this"
    assert not check_calls(wrong, it).correct


def test_irrelevance_correct_iff_no_call() -> None:
    for it in items("irrelevance")[:20]:
        assert check_calls([], it).correct
        assert check_calls(None, it).correct  # unparsable output is not a call (as in BFCL)
        doc = it.functions[0]
        verdict = check_calls([{"name": doc["name"], "arguments": {}}], it)
        assert not verdict.correct and doc["name"] in verdict.reason


def test_parse_failures_and_openai_shape() -> None:
    it = by_id("simple_python_1")
    for bad in (None, ["math.factorial"], [{"arguments": {"number": 5}}],
                [{"name": "math.factorial", "arguments": "{not json"}],
                [{"name": "math.factorial", "arguments": [5]}]):  # fmt: skip
        verdict = check_calls(bad, it)  # type: ignore[arg-type]
        assert not verdict.correct and verdict.reason.startswith("parse failure"), bad
    openai_style = {
        "id": "call_0",
        "type": "function",
        "function": {"name": "math_factorial", "arguments": '{"number": 5}'},
    }
    assert check_calls([openai_style], it).correct
