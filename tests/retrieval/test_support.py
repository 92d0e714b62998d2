"""Support scoring: a verbatim quote under a sentence it does not back is caught.

The scorer is the real one (all-MiniLM-L6-v2 from its package); the cases are the
issue's own ("The nonlocal statement is a syntax error ...") and plain paraphrases.
"""

from __future__ import annotations

from pydoc_data.topics import topics

import pytest

from slmkit.retrieval import (
    REFUSAL,
    Embedder,
    Passage,
    SupportScorer,
    score_support,
    verify_answer,
)
from slmkit.retrieval.answering import candidate_sentences
from slmkit.retrieval.support import content_words

NONLOCAL_QUOTE = 'The "nonlocal" statement causes the listed identifiers to refer to'
NONLOCAL = topics["nonlocal"]


@pytest.fixture(scope="module")
def scorer(embedder: Embedder) -> SupportScorer:
    return SupportScorer(embedder)


def test_content_words_split_identifiers_and_drop_function_words() -> None:
    assert content_words("The SyntaxError is raised by nonlocal_names!") == [
        "syntax",
        "error",
        "rais",
        "nonlocal",
        "nam",
    ]
    assert content_words("assertions") == content_words("assertion")
    assert content_words("What does it do?") == []


def test_a_verbatim_quote_that_does_not_say_it_does_not_support(scorer: SupportScorer) -> None:
    wrong = scorer.score(
        "The nonlocal statement is a syntax error that causes a syntax error when a "
        "function is called with a nonlocal variable.",
        "The statement allows encapsulated code to rebind variables outside of the local scope",
    )
    right = scorer.score(
        "The nonlocal statement makes the listed identifiers refer to previously bound "
        "variables in the nearest enclosing scope.",
        "causes the listed identifiers to refer to previously bound variables in the nearest "
        "enclosing scope",
    )
    assert not wrong.supported and right.supported
    assert wrong.lexical < right.lexical and 0 <= wrong.semantic < right.semantic <= 1
    assert scorer.supports(right_sentence := "It rebinds names.", ["It rebinds names."])
    assert right_sentence and not scorer.supports("Lyon has 500,000 inhabitants.", [NONLOCAL])


def test_relevance_refuses_questions_the_passages_are_not_about(scorer: SupportScorer) -> None:
    assert scorer.answerable("What does the nonlocal statement do?", [NONLOCAL])
    assert not scorer.answerable("What is the population of Lyon?", [NONLOCAL])
    assert scorer.relevance("What is the population of Lyon?", []) == 0.0


PASSAGE = Passage("pydoc:nonlocal", "pydoc:nonlocal#0", "nonlocal", NONLOCAL, 0, len(NONLOCAL), 1)
GOOD = 'The nonlocal statement makes names refer to bindings in an enclosing scope. [1] "{q}"'
BAD = 'Nonlocal is a syntax error raised on every function call. [1] "{q}"'


def test_unsupported_sentences_are_marked_dropped_or_withheld(scorer: SupportScorer) -> None:
    quote = "must refer to pre-existing bindings in an\nenclosing scope"
    output = GOOD.format(q=quote) + "\n" + BAD.format(q=quote)
    marked = verify_answer("q", output, [PASSAGE], scorer=scorer)
    assert marked.sentence_supported == (True, False) and marked.unsupported_sentences == [1]
    assert [c.supports for c in marked.citations] == [True, False]
    assert all(c.verified and c.verbatim for c in marked.citations)  # both quotes are real
    assert marked.to_dict()["supported"] is False

    dropped = verify_answer("q", output, [PASSAGE], scorer=scorer, unsupported="drop")
    assert len(dropped.sentences) == 1 and dropped.supported is True
    assert dropped.text.endswith("[1]") and dropped.meta["dropped"] == [marked.sentences[1]]
    assert [c.sentence for c in dropped.citations] == [0]

    withheld = verify_answer("q", BAD.format(q=quote), [PASSAGE], scorer=scorer)
    assert withheld.refused and withheld.text == REFUSAL and withheld.citations == ()
    assert withheld.meta["withheld"]["text"].startswith("Nonlocal is a syntax error")
    assert "no sentence" in withheld.meta["refusal"] and withheld.meta["refused_by"] == "support"

    # An unverified quote supports nothing, however well its words match.
    fake = verify_answer("q", GOOD.format(q="names refer to bindings in an enclosing"), [PASSAGE])
    assert fake.citations[0].supports is None  # not scored without a scorer
    scored = score_support(fake, scorer)
    assert scored.refused and scored.meta["withheld"]["citations"][0]["supports"] is False


def test_candidates_are_prose_sentences_most_relevant_first(scorer: SupportScorer) -> None:
    found = candidate_sentences("What does the nonlocal statement do?", [PASSAGE], scorer)
    sentences = [s for _, s in found]
    assert sentences[0].startswith('The "nonlocal" statement causes the listed identifiers')
    assert all(n == 1 and "\n" not in s and "::=" not in s for n, s in found)
    assert not any(s.startswith('The "nonlocal" statement *') for s in sentences)  # heading
    assert len(found) <= 8


def test_fenced_code_is_not_a_candidate(scorer: SupportScorer) -> None:
    """A Markdown code block is no sentence to answer with, fenced or cut by the chunk;
    a reStructuredText heading's ``~~~`` underline is no fence."""
    text = (
        "Rebuilding\n~~~~~~~~~~\n\nAn index is rebuilt from its files.\n\n"
        "Indexes are rebuilt with one command. Run it after the files change.\n\n"
        "```python\nindex = Index.build([Path('docs/')], path='runs/x')\n\n"
        "for p in index.search('how do I rebuild an index?'):\n    print(p.score, p.text)\n```\n\n"
        "A rebuilt index replaces the old one atomically.\n\n"
        "~~~\nindex.add(Path('new.md'))  # the chunk ends inside this block."
    )
    passage = Passage("guide.md", "guide.md#0", "Guide", text, 0, len(text), 1.0)
    found = [s for _, s in candidate_sentences("How do I rebuild an index?", [passage], scorer)]
    assert sorted(found) == [
        "A rebuilt index replaces the old one atomically.",
        "An index is rebuilt from its files.",
        "Indexes are rebuilt with one command.",
        "Run it after the files change.",
    ]


def test_a_full_embedding_cache_keeps_what_the_current_call_needs(embedder: Embedder) -> None:
    """A long-lived demo's cache is cut to its newest entries when it grows past its bound;
    a text cached long ago and needed again in the call that crosses the bound must still
    be scored (it raised KeyError). The filler entries stand in for 20,000 earlier texts."""
    scorer = SupportScorer(embedder)
    first = scorer.score(NONLOCAL_QUOTE, [NONLOCAL])
    filler = {f"earlier text {i}": scorer._vectors(["x"])[0] for i in range(20_000)}
    scorer._vectors_by_text.update(filler)
    again = scorer.score(NONLOCAL_QUOTE, [NONLOCAL, "A sentence nobody asked about before."])
    assert again.score >= first.score
    assert len(scorer._vectors_by_text) <= 10_000
