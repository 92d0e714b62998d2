"""Citation metrics: exact counts with a word-overlap judge, and the embedded similarity judge."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from slmkit.retrieval import (
    REFUSAL,
    CitedAnswer,
    Embedder,
    Passage,
    SimilarityJudge,
    citation_metrics,
    verify_answer,
)

EIFFEL = "The Eiffel Tower is a wrought-iron tower in Paris. It is 330 metres tall."
BEES = "Honey bees live in colonies with a single queen."
PASSAGES = [
    Passage("eiffel", "eiffel#0", "Eiffel Tower", EIFFEL, 0, len(EIFFEL), 1.0),
    Passage("bees", "bees#0", "Honey bee", BEES, 0, len(BEES), 0.5),
]


def cited(output: str) -> CitedAnswer:
    return verify_answer("q", output, PASSAGES)


class WordJudge:
    """Supported when every content word of the claim occurs in the evidence: exact and
    predictable, so the ALCE bookkeeping can be checked to the unit."""

    name = "words"

    def supports(self, claim: str, evidence: Sequence[str]) -> bool:
        words = {w.strip(".,").lower() for w in claim.split() if len(w.strip(".,")) > 3}
        text = " ".join(evidence).lower()
        return all(w in text for w in words)


def test_mechanical_rates_and_alce_bookkeeping() -> None:
    answers = [
        # supported, verbatim
        cited('The Eiffel Tower is 330 metres tall. [1] "It is 330 metres tall"'),
        # second sentence cites the wrong passage: unsupported
        cited('Bees live in colonies. [2] "live in colonies"\nThe tower is tall. [2] "queen"'),
        # invented quote; invalid marker
        cited('The tower is painted red. [1] "It is painted red"\nBees. [5] "colonies with"'),
        # one sentence, two citations: [2] is irrelevant (alone it fails, [1] suffices)
        cited('A tower in Paris. [1] "tower in Paris"\nA tower in Paris. [2] "Honey bees"'),
        # the same quote twice
        cited('Tall tower. [1] "330 metres tall"\nThe tall tower. [1] "330 metres tall"'),
        cited(REFUSAL),
    ]
    m = citation_metrics(answers, judge=WordJudge())
    assert (m.answers, m.refused, m.sentences, m.citations) == (6, 1, 8, 9)
    # every quote except "It is painted red" and the one behind the invalid marker
    assert m.quote_validity == pytest.approx(7 / 9)
    assert m.marker_validity == pytest.approx(8 / 9)
    assert m.duplicate_quotes == pytest.approx(1 / 9)
    # supported: answer 1, the first sentence of 2, answer 4, both of answer 5
    assert m.citation_recall == pytest.approx(5 / 8)
    # precise: those sentences' citations, minus the irrelevant [2] of answer 4
    assert m.citation_precision == pytest.approx(5 / 9)
    assert m.judge == "words" and ("judge", "words (evidence: passage)") in m.rows()
    json.dumps(m.to_dict())


def test_quote_evidence_is_stricter_than_passage_evidence() -> None:
    ans = [cited('The Eiffel Tower is in Paris. [1] "330 metres tall"')]
    assert citation_metrics(ans, judge=WordJudge()).citation_recall == 1.0
    assert citation_metrics(ans, judge=WordJudge(), evidence="quote").citation_recall == 0.0


def test_no_answers_gives_no_rates() -> None:
    m = citation_metrics([], judge=WordJudge())
    assert m.quote_validity is None and m.citation_recall is None
    assert ("quote validity", "n/a") in m.rows()


def test_similarity_judge_is_named_and_separates_support_from_topic(embedder: Embedder) -> None:
    judge = SimilarityJudge(embedder)
    assert "all-MiniLM-L6-v2" in judge.name and ">= 0.5" in judge.name
    assert judge.supports("The Eiffel Tower is 330 metres tall.", [EIFFEL])
    assert not judge.supports("The Eiffel Tower is 330 metres tall.", [BEES])
    m = citation_metrics(
        [cited('The Eiffel Tower is 330 metres tall. [1] "It is 330 metres tall"')], judge=judge
    )
    assert m.citation_recall == 1.0 and m.citation_precision == 1.0
    assert m.judge == judge.name
