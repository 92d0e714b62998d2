"""The BFCL items of a category, parsed once per test session (shared by the BFCL tests)."""

from __future__ import annotations

from slmkit.simulators.envs.bfcl_data import BfclItem, load_bfcl

_LOADED: dict[str, list[BfclItem]] = {}


def items(category: str) -> list[BfclItem]:
    """Each category is parsed once per test session."""
    if category not in _LOADED:
        _LOADED[category] = load_bfcl(category)
    return _LOADED[category]


def by_id(item_id: str) -> BfclItem:
    category = item_id.rsplit("_", 1)[0]
    return next(it for it in items(category) if it.id == item_id)
