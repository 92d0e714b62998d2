"""BFCL loading on the real bfcl-eval data (fetched once into the cache, see test_pkgdata)."""

from __future__ import annotations

import pytest
from bfcl_items import items

from slmkit.simulators.envs.bfcl_data import BFCL_CATEGORIES, load_bfcl

EXPECTED_COUNTS = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
}


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
