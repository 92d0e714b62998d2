"""verify_quote: exact, normalized (mapped back to original offsets), fuzzy, and fakes."""

from __future__ import annotations

import random

import pytest

from slmkit.retrieval import QuoteMatch, RetrievalError, normalize_text, verify_quote

SOURCE = (
    "The Eiffel Tower was completed in 1889.  It stands\n"
    "on the Champ de Mars — the “Iron Lady” of Paris — and is 330\u00a0metres tall.\n"
    "Its de\u00adsigner\u2019s e\u0301quipe included the engineer Maurice Koechlin."
)


def test_exact_match_reports_source_offsets() -> None:
    match = verify_quote("completed in 1889", SOURCE)
    assert match == QuoteMatch(True, 21, 38, 1.0, "exact")
    assert SOURCE[match.start : match.end] == "completed in 1889"


@pytest.mark.parametrize(
    ("quote", "original"),
    [
        ("1889. It stands on the Champ", "1889.  It stands\non the Champ"),
        ('the "Iron Lady" of Paris - and', "the “Iron Lady” of Paris — and"),
        ("330 METRES TALL", "330\u00a0metres tall"),
        ("designer's \u00e9quipe", "de\u00adsigner\u2019s e\u0301quipe"),
        ("ＥＩＦＦＥＬ Tower", "Eiffel Tower"),  # full-width letters (NFKC)
    ],
)
def test_normalized_match_maps_back_to_original_offsets(quote: str, original: str) -> None:
    match = verify_quote(quote, SOURCE)
    assert match.verified and match.method == "normalized" and match.score == 1.0
    assert match.start is not None and match.end is not None
    assert SOURCE[match.start : match.end] == original


def test_planted_fake_quote_is_caught() -> None:
    # One changed fact: close enough to align, never verified.
    fake = verify_quote("The Eiffel Tower was completed in 1899.", SOURCE)
    assert not fake.verified and fake.method == "fuzzy"
    assert 0.9 <= fake.score < 1.0
    assert fake.start is not None and fake.end is not None
    assert SOURCE[fake.start : fake.end].startswith("The Eiffel Tower was completed in 18")
    # Invented outright: nothing to point at.
    invented = verify_quote("The tower was painted bright green in 2020.", SOURCE)
    assert invented == QuoteMatch(False, None, None, invented.score, "none")
    assert invented.score < 0.9


def test_fuzzy_threshold_controls_reporting_not_verification() -> None:
    loose = verify_quote("the engineer Maurice Kochlin", SOURCE, fuzzy_threshold=0.5)
    assert loose.method == "fuzzy" and not loose.verified
    strict = verify_quote("the engineer Maurice Kochlin", SOURCE, fuzzy_threshold=0.999)
    assert strict.method == "none" and strict.start is None


def test_empty_and_blank_quotes_never_verify() -> None:
    for quote in ["", "   ", "\u00ad\u200b"]:
        assert not verify_quote(quote, SOURCE).verified


def test_random_quotes_with_typographic_noise_map_to_equal_spans() -> None:
    rng = random.Random("verify")
    alphabet = "abcdefghij   \n\t“”‘’—–-'\"ÉéﬁFI."
    for _ in range(300):
        source = "".join(rng.choice(alphabet) for _ in range(rng.randint(20, 200)))
        a = rng.randrange(len(source))
        b = rng.randint(a + 1, len(source))
        quote = source[a:b]
        if not normalize_text(quote):
            continue
        noisy = quote.upper() if rng.random() < 0.5 else quote
        noisy = noisy.replace("“", '"').replace("—", "-").replace("  ", " ").replace("\n", " ")
        match = verify_quote(noisy, source)
        assert match.verified, (quote, noisy)
        assert match.start is not None and match.end is not None
        assert normalize_text(source[match.start : match.end]) == normalize_text(noisy)


@pytest.mark.parametrize(("quote", "source"), [(None, "text"), ("text", None), (b"te", "text")])
def test_a_quote_or_source_that_is_not_a_str_is_refused(quote: object, source: object) -> None:
    with pytest.raises(RetrievalError, match="verify_quote takes two str") as err:
        verify_quote(quote, source)  # type: ignore[arg-type]
    assert err.value.hint
