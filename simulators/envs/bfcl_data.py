"""The Berkeley Function Calling Leaderboard (BFCL) data: single-turn AST categories.

The questions, function docs and possible answers ship inside the PyPI package
``bfcl-eval`` (Apache-2.0), which :func:`slmkit.models.pkgdata.fetch_package` downloads
once into the cache (it is never installed). Layout of the pinned version::

    bfcl_eval/data/BFCL_v4_<category>.json                  one question per line
    bfcl_eval/data/possible_answer/BFCL_v4_<category>.json  {"id", "ground_truth"} per line

:func:`load_bfcl` reads one category into :class:`BfclItem`\\ s; :func:`reference_calls`
turns an item's possible answer into one correct set of calls (gold trajectories, and
checks of the checker in :mod:`slmkit.simulators.envs.bfcl_check`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.models import DataError, fetch_package

__all__ = [
    "BFCL_CATEGORIES",
    "BFCL_PACKAGE",
    "BfclItem",
    "function_doc",
    "load_bfcl",
    "reference_calls",
]

BFCL_PACKAGE = "bfcl-eval"
"""The PyPI package the data comes from (version pinned in ``KNOWN_PACKAGES``)."""

BFCL_CATEGORIES: dict[str, str] = {
    "simple_python": "simple_python",
    "multiple": "multiple",
    "parallel": "parallel",
    "parallel_multiple": "parallel_multiple",
    "irrelevance": "irrelevance",
}
"""Supported categories -> the ``<stem>`` of their files ``BFCL_v<N>_<stem>.json``."""

_ALIASES = {"simple": "simple_python"}
_LEGACY_STEMS = {"simple_python": "simple"}  # bfcl-eval before the Java/JS split


@dataclass(frozen=True)
class BfclItem:
    """One BFCL question.

    Attributes:
        id: BFCL's id, e.g. ``"simple_python_0"``.
        category: the canonical category name (``"simple"`` is ``"simple_python"``).
        messages: the question as OpenAI chat messages (``{"role", "content"}``).
        functions: BFCL's function docs, ``{"name", "description", "parameters"}``, with
            BFCL type names (``dict``, ``float``, ``tuple``, ``any``) in ``parameters``.
        answers: the possible answers, one ``{func_name: {arg: [allowed values]}}`` per
            expected call (``""`` among the allowed values: the argument may be omitted);
            empty for ``irrelevance``.
    """

    id: str
    category: str
    messages: list[dict[str, Any]]
    functions: list[dict[str, Any]]
    answers: list[dict[str, dict[str, list[Any]]]]


def _canonical_category(category: str) -> str:
    cat = _ALIASES.get(category, category)
    if cat not in BFCL_CATEGORIES:
        raise ValueError(
            f"unknown BFCL category {category!r}; "
            f"choose one of {sorted([*BFCL_CATEGORIES, *_ALIASES])}"
        )
    return cat


def _find_data_file(root: Path, stems: Sequence[str], folder: str) -> Path | None:
    """The newest ``BFCL_v<N>_<stem>.json`` directly inside a folder named ``folder``."""
    for stem in stems:
        pattern = re.compile(rf"BFCL_v(\d+)_{re.escape(stem)}\.json")
        found: list[tuple[int, Path]] = []
        for path in root.rglob("BFCL_v*.json"):
            match = pattern.fullmatch(path.name)
            if match and path.parent.name == folder:
                found.append((int(match.group(1)), path))
        if found:
            return max(found)[1]
    return None


def _read_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    try:
        if text.lstrip().startswith("["):
            records = json.loads(text)
        else:
            records = [json.loads(line) for line in text.split("\n") if line.strip()]
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path} is not valid JSON lines: {exc}",
            hint=f"delete {path.parent} from the cache so it is fetched again",
        ) from exc
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{path} does not hold JSON objects", hint="pin another bfcl-eval version")
    return records


def _id_key(item_id: str) -> tuple[str, int]:
    head, _, tail = item_id.rpartition("_")
    return (head, int(tail)) if tail.isdigit() else (item_id, -1)


def load_bfcl(
    category: str, limit: int | None = None, *, version: str | None = None
) -> list[BfclItem]:
    """Load the questions (and possible answers) of one BFCL category.

    Args:
        category: one of :data:`BFCL_CATEGORIES` (``"simple"`` is an alias of
            ``"simple_python"``).
        limit: keep only the first ``limit`` items.
        version: a ``bfcl-eval`` version; ``None`` uses the pinned one.

    Returns:
        The items in id order (``simple_python_0``, ``simple_python_1``, ...).

    Raises:
        ValueError: unknown category.
        DataError: the package cannot be fetched or lacks the category's files.
    """
    cat = _canonical_category(category)
    root = fetch_package(BFCL_PACKAGE, version)
    stems = [BFCL_CATEGORIES[cat]] + ([_LEGACY_STEMS[cat]] if cat in _LEGACY_STEMS else [])
    qfile = _find_data_file(root, stems, "data")
    if qfile is None:
        raise DataError(
            f"no question file for BFCL category {cat!r} in {root}",
            hint="this bfcl-eval version has another layout; use the pinned version",
        )
    answers: dict[str, list[dict[str, dict[str, list[Any]]]]] = {}
    if cat != "irrelevance":
        afile = _find_data_file(root, stems, "possible_answer")
        if afile is None:
            raise DataError(
                f"no possible-answer file for BFCL category {cat!r} in {root}",
                hint="this bfcl-eval version has another layout; use the pinned version",
            )
        answers = {str(r["id"]): r["ground_truth"] for r in _read_records(afile)}

    items: list[BfclItem] = []
    for rec in sorted(_read_records(qfile), key=lambda r: _id_key(str(r["id"]))):
        item_id = str(rec["id"])
        turns = rec["question"]
        if len(turns) != 1:
            raise DataError(
                f"{item_id} has {len(turns)} turns; only single-turn items are supported",
                hint="use a single-turn category",
            )
        if cat != "irrelevance" and item_id not in answers:
            raise DataError(f"{item_id} has no possible answer in the package", hint=None)
        items.append(
            BfclItem(
                id=item_id,
                category=cat,
                messages=[{"role": m["role"], "content": m["content"]} for m in turns[0]],
                functions=list(rec["function"]),
                answers=list(answers.get(item_id, [])),
            )
        )
        if limit is not None and len(items) >= limit:
            break
    return items


def function_doc(functions: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any] | None:
    """The function doc called ``name`` among ``functions`` (BFCL item docs), or None."""
    for doc in functions:
        if doc.get("name") == name:
            return doc
    return None


def _first(possible: Sequence[Any]) -> Any:
    for value in possible:
        if value != "":
            return value
    return ""


def _concrete(value: Any, schema: Mapping[str, Any]) -> Any:
    """Turn the first allowed value of a parameter into a plain argument value."""
    declared = schema.get("type")
    if declared == "dict" and isinstance(value, dict):
        return {k: _first(v) for k, v in value.items() if "" not in v}
    items = schema.get("items")
    items_type = items.get("type") if isinstance(items, Mapping) else None
    if declared == "array" and isinstance(value, list) and items_type == "dict":
        return [
            {k: _first(v) for k, v in d.items() if "" not in v} if isinstance(d, dict) else d
            for d in value
        ]
    return value


def reference_calls(item: BfclItem, *, include_optional: bool = False) -> list[dict[str, Any]]:
    """One correct answer of ``item`` as calls ``{"name", "arguments"}``.

    Each argument takes its first allowed value other than ``""``. Arguments that may be
    omitted (their allowed values hold ``""``) are left out unless the function doc
    requires them or ``include_optional`` is set. Useful as gold trajectories and to test
    checkers.
    """
    calls: list[dict[str, Any]] = []
    for answer in item.answers:
        ((name, allowed),) = answer.items()
        doc = function_doc(item.functions, name) or {}
        params: Mapping[str, Any] = doc.get("parameters") or {}
        props: Mapping[str, Any] = params.get("properties") or {}
        required = set(params.get("required") or [])
        args: dict[str, Any] = {}
        for param, values in allowed.items():
            if param not in props or _first(values) == "":
                continue  # BFCL data has a few answers naming args the doc lacks
            if "" in values and param not in required and not include_optional:
                continue
            args[param] = _concrete(_first(values), props.get(param) or {})
        calls.append({"name": name, "arguments": args})
    return calls
