"""Cited answers: the grammar's promises, checked with the real embedded model and index.

The grammar tests run the llguidance matcher over a byte-level tokenizer, so they state
exactly which outputs the grammar admits, independent of any model. The model tests
decode with SmolLM2-135M over a real FAISS + BM25 index of Python reference topics and
check every quote against the stored source text.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pydoc_data.topics import topics
from typing import Any

import llguidance
import pytest

from slmkit.models import ChatModel
from slmkit.retrieval import (
    REFUSAL,
    ChunkingConfig,
    Citation,
    CitedAnswer,
    Document,
    Embedder,
    Index,
    Passage,
    RetrievalError,
    SupportScorer,
    answer,
    citation_grammar,
    grounded_grammar,
    parse_cited_output,
    verify_answer,
)
from slmkit.retrieval.citation_grammar import parse_grounded_output

TOPICS = ["assert", "pass", "break", "continue", "return", "del", "global", "while", "raise"]
QUESTIONS = [
    "What does the assert statement do?",
    "What does the pass statement do?",
    "What does break do in a loop?",
    "What does the continue statement do?",
    "What does return do in a function?",
    "What does the del statement do?",
    "What does the global statement declare?",
    "How does the while statement repeat execution?",
]
TEMPERATURES = [0.0, 0.7, 1.0]


# --- the grammar, without a model ---------------------------------------------------------


class _ByteTokenizer:
    """One token per byte (plus EOS): lets the matcher check any string exactly."""

    eos_token_id = 256
    bos_token_id = None
    tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]

    def __call__(self, data: bytes) -> list[int]:
        return list(data)


_BYTES = llguidance.LLTokenizer(llguidance.TokenizerWrapper(_ByteTokenizer()))


def accepts(grammar: str, text: str) -> bool:
    """Whether ``grammar`` admits exactly ``text`` as a complete output."""
    compiled = llguidance.LLMatcher.grammar_from_lark(grammar)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(compiled, _BYTES)
    assert not is_error, messages
    matcher = llguidance.LLMatcher(_BYTES, compiled, log_level=0)
    return bool(matcher.consume_tokens(list(text.encode())) and matcher.is_accepting())


P1 = 'The "assert" statement inserts debugging assertions into a program.\n\nIt is cheap.'
P2 = "Honey bees live in colonies with a single queen; {braces} and \\ back\\slash, café."


@pytest.mark.parametrize(
    ("output", "admitted"),
    [
        ('Assert checks things. [1] "inserts debugging assertions"', True),
        ('Bees have queens. [2] "live in colonies with a single queen"', True),
        ('Odd text survives. [2] "braces} and \\ back\\slash, café"', True),
        ('One. [1] "inserts debugging assertions"\nTwo. [2] "a single queen"', True),
        (REFUSAL, True),
        # the quote must be from the passage the marker names
        ('Bees have queens. [1] "live in colonies with a single queen"', False),
        # markers name retrieved passages only
        ('Assert checks things. [3] "inserts debugging assertions"', False),
        # invented, altered, or partial-word quotes
        ('Assert checks things. [1] "inserts debugging statements"', False),
        ('Assert checks things. [1] "nserts debugging assertions"', False),
        # quotes stop at a double quote and at a blank line (paragraph break)
        ('Assert checks things. [1] "assert\\" statement inserts"', False),
        ('Assert checks things. [1] "a program.\n\nIt is cheap"', False),
        # too short to be evidence (min_quote_chars=8)
        ('Assert checks things. [1] "It is"', False),
        # a sentence ends with a full stop right before its marker; numbers are fine
        ('It is 1.25 bar. [1] "inserts debugging assertions"', True),
        ('No full stop [1] "inserts debugging assertions"', False),
        # one sentence per citation: a full stop and a space end the sentence
        ('Assert checks. It is cheap. [1] "inserts debugging assertions"', False),
        # a rambling sentence is cut off by the grammar (max_sentence_chars=200)
        ("A" + " word" * 60 + '. [1] "inserts debugging assertions"', False),
        # at most max_sentences claims, each with a citation
        ("Assert checks things.", False),
        ('A. [1] "a program"\nB. [1] "a program"\nC. [1] "a program"', False),
    ],
)
def test_grammar_admits_only_verbatim_quotes_of_the_named_passage(
    output: str, admitted: bool
) -> None:
    grammar = citation_grammar([P1, P2], max_sentences=2, min_quote_chars=8)
    assert accepts(grammar, output) is admitted


def test_grammar_without_citable_passage_allows_only_the_refusal() -> None:
    grammar = citation_grammar(["ok", "no"], min_quote_chars=8)
    assert accepts(grammar, REFUSAL)
    assert not accepts(grammar, 'Yes. [1] "ok"')


S1 = 'The "assert" statement inserts debugging assertions into a program.'
S2 = "Honey bees live in colonies with a single queen; {braces} and \\ back\\slash, café."


@pytest.mark.parametrize(
    ("output", "admitted"),
    [
        (f"[1] {S1}", True),
        (f"[2] {S2}", True),
        (f"[1] {S1}\n[2] {S2}", True),
        (REFUSAL, True),
        # a sentence only under the marker of its own passage, whole and unaltered
        (f"[2] {S1}", False),
        ("[1] The assert statement inserts debugging assertions into a program.", False),
        (f"[1] {S1[:-1]}", False),
        (f"[1] {S1} And more words of my own.", False),
        # no words of the model's own, and at most max_sentences lines
        ("Assert checks things.", False),
        (f"[1] {S1}\n[2] {S2}\n[1] {S1}", False),
    ],
)
def test_grounded_grammar_admits_only_whole_candidate_sentences(
    output: str, admitted: bool
) -> None:
    grammar = grounded_grammar([(1, S1), (2, S2)], max_sentences=2)
    assert accepts(grammar, output) is admitted


def test_grounded_grammar_without_refusal_or_candidates() -> None:
    assert not accepts(grounded_grammar([(1, S1)], allow_refusal=False), REFUSAL)
    assert accepts(grounded_grammar([]), REFUSAL)
    with pytest.raises(ValueError, match="one non-empty line"):
        grounded_grammar([(1, "two\nlines")])
    parsed = parse_grounded_output(f"[1] {S1}\n[2] {S2}\nsome prose")
    assert [(c.marker, c.sentence == c.quote) for c in parsed.claims] == [(1, True), (2, True)]
    assert parsed.leftover == "some prose" and not parsed.complete


def test_parser_reads_claims_refusals_and_leftovers() -> None:
    parsed = parse_cited_output('A is b. [1] "a quote"\nC is d. [2] "an\nother"')
    assert [(c.sentence, c.marker, c.quote) for c in parsed.claims] == [
        ("A is b.", 1, "a quote"),
        ("C is d.", 2, "an\nother"),
    ]
    assert parsed.complete and not parsed.refused
    assert parse_cited_output(REFUSAL).refused
    loose = parse_cited_output('Well, A is b [1] "a quote" and more prose')
    assert len(loose.claims) == 1 and not loose.complete
    assert loose.leftover == "and more prose"


# --- the real model over a real index -------------------------------------------------------


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Index:
    """Python reference topics in small chunks (short prompts keep 2 CPU cores busy less)."""
    docs = [Document(f"pydoc:{t}", topics[t].splitlines()[0], topics[t]) for t in TOPICS]
    return Index.build(
        docs,
        path=tmp_path_factory.mktemp("cite") / "index",
        embedder=embedder,
        chunking=ChunkingConfig(max_tokens=48, overlap=8),
    )


def _check_citations(ans: CitedAnswer, index: Index) -> None:
    """Every citation names a retrieved passage and quotes it verbatim, at a true span."""
    assert ans.constrained
    for c in ans.citations:
        assert 1 <= c.marker <= len(ans.passages), ans.raw
        passage = ans.passages[c.marker - 1]
        assert c.quote in passage.text, (c.quote, passage.text)
        assert (c.verified, c.method, c.checked_against) == (True, "exact", "source")
        assert (c.source_id, c.chunk_id) == (passage.source_id, passage.chunk_id)
        assert c.start is not None and c.end is not None
        assert passage.start <= c.start < c.end <= passage.end
        assert index.document(c.source_id).text[c.start : c.end] == c.quote


def test_constrained_quotes_are_verbatim_across_questions_and_temperatures(
    index: Index, smollm: ChatModel
) -> None:
    answers = [
        answer(q, index, smollm, k=3, mode="free", max_sentences=2, temperature=t, seed=i)
        for i, q in enumerate(QUESTIONS)
        for t in TEMPERATURES
    ]
    for ans in answers:
        # A draft withheld for lack of support was still decoded under the grammar.
        drafted = [Citation(**c) for c in ans.meta.get("withheld", {}).get("citations", [])]
        _check_citations(replace(ans, citations=ans.citations + tuple(drafted)), index)
        assert ans.refused == (not ans.citations)
        assert ans.mode == "free" and all(c.supports is not None for c in ans.citations)
        json.dumps(ans.to_dict())
    cited = [a for a in answers if a.citations or "withheld" in a.meta]
    # Not vacuous: the model answers (and so cites) most of these on-topic questions.
    assert len(cited) >= len(answers) // 2, [a.raw for a in answers]
    for ans in (a for a in answers if not a.refused):
        assert set(ans.cited_passages) | set(ans.uncited_passages) == set(
            range(1, len(ans.passages) + 1)
        )
        assert not set(ans.cited_passages) & set(ans.uncited_passages)
        assert all(f"[{n}]" in ans.text for n in ans.cited_passages)


def test_grounded_answers_copy_passage_sentences_so_they_support_themselves(
    index: Index, smollm: ChatModel
) -> None:
    for question in QUESTIONS[:3]:
        ans = answer(question, index, smollm, k=3, max_sentences=2)
        assert ans.mode == "grounded" and ans.constrained and not ans.refused, ans.meta
        assert 1 <= len(ans.sentences) <= 2 and ans.supported is True
        for c in ans.citations:
            assert ans.sentences[c.sentence] == c.quote
            assert c.verified and c.supports and c.support == 1.0
            passage = ans.passages[c.marker - 1]
            assert " ".join(passage.text.split()).find(c.quote) >= 0
            assert c.start is not None and c.end is not None
            assert passage.start <= c.start < c.end <= passage.end


def test_a_question_no_passage_is_about_is_refused_without_the_model(
    index: Index, smollm: ChatModel
) -> None:
    for mode in ("grounded", "free"):
        ans = answer("What is the population of Lyon?", index, smollm, mode=mode)
        assert ans.refused and ans.text == REFUSAL and ans.citations == ()
        assert ans.raw == "" and "no retrieved passage is about" in ans.meta["refusal"]
        assert ans.meta["refused_by"] == "retrieval"
        assert ans.meta["relevance"] < 0.3 and len(ans.passages) == 4


def test_planted_fake_quote_is_caught_and_real_quote_located(index: Index) -> None:
    passages = index.search("What does the assert statement do?", k=3)
    real = next(p for p in passages if "debugging assertions" in p.text)
    number = passages.index(real) + 1
    output = "\n".join(
        [
            f'Assert inserts checks. [{number}] "convenient way to insert debugging assertions"',
            f'Assert removes bugs. [{number}] "a convenient way to remove all bugs"',
            f'It is typographic. [{number}] "convenient   way to\tinsert debugging assertions"',
            'It cites nothing real. [7] "convenient way to insert debugging assertions"',
        ]
    )
    ans = verify_answer("q", output, passages, documents=index)
    good, fake, spaced, unknown = ans.citations
    source = index.document(real.source_id).text
    assert good.verified and good.method == "exact"
    assert good.start is not None and source[good.start : good.end] == good.quote
    assert not fake.verified and fake.method in ("fuzzy", "none")
    assert spaced.verified and spaced.method == "normalized"
    assert spaced.start is not None and " ".join(source[spaced.start : spaced.end].split()) == (
        "convenient way to insert debugging assertions"
    )
    assert (unknown.verified, unknown.checked_against, unknown.source_id) == (False, "nothing", "")
    assert not ans.verified and ans.cited_passages == {number: real}


def test_quote_checked_against_the_source_not_a_tampered_passage(index: Index) -> None:
    """A passage that no longer matches its source cannot vouch for a quote."""
    real = index.search("What does the assert statement do?", k=1)[0]
    tampered = replace(real, text=real.text + " Assertions also make coffee.")
    ans = verify_answer("q", 'Yes. [1] "Assertions also make coffee"', [tampered], documents=index)
    assert not ans.citations[0].verified
    # Without a document store, only the passage itself can be checked, and we say so.
    alone = verify_answer("q", 'Yes. [1] "Assertions also make coffee"', [tampered])
    assert alone.citations[0].verified and alone.citations[0].checked_against == "passage"


class _ListRetriever:
    """A Retriever over a fixed list of passages."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def search(self, query: str, k: int = 5) -> list[Passage]:
        return self.passages[:k]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r, m, s: answer(None, r, m), "question is empty or not a str"),
        (lambda r, m, s: answer("  ", r, m), "question is empty"),
        (lambda r, m, s: answer("q?", "runs/my-index", m), "retriever is a str, with no search"),
        (lambda r, m, s: answer("q?", r, "llamacpp:smollm2"), "model is a str, not a ChatModel"),
        (lambda r, m, s: answer("q?", r, m, k=0), "at least 1, got 0 and 3"),
        (lambda r, m, s: answer("q?", r, m, max_sentences=0), "at least 1, got 4 and 0"),
        (lambda r, m, s: answer("q?", r, m, mode="short"), "unknown answer mode 'short'"),
        (lambda r, m, s: verify_answer("q", REFUSAL, [], unsupported="hide", scorer=s), "'hide'"),
    ],
)
def test_bad_arguments_to_answer_are_refused_clearly(
    smollm: ChatModel, embedder: Embedder, call: Any, message: str
) -> None:
    with pytest.raises(RetrievalError, match=message) as err:
        call(_ListRetriever([]), smollm, SupportScorer(embedder))
    assert err.value.hint


def test_refusal_has_no_citations(smollm: ChatModel) -> None:
    nothing = answer("What does assert do?", _ListRetriever([]), smollm)
    assert nothing.refused and nothing.citations == () and nothing.text == REFUSAL
    # Passages too short to quote: the grammar leaves the model only the refusal.
    tiny = [Passage("s", "s#0", "S", "ok", 0, 2, 1.0)]
    forced = answer(
        "What does assert do?",
        _ListRetriever(tiny),
        smollm,
        mode="free",
        min_relevance=0,
        max_tokens=16,
    )
    assert forced.raw == REFUSAL and forced.refused and forced.citations == ()
    assert forced.meta["refused_by"] == "model"
    assert forced.uncited_passages == {1: tiny[0]} and forced.cited_passages == {}
    parsed = verify_answer("q", REFUSAL, tiny)
    assert parsed.refused and not parsed.citations


def test_unconstrained_answer_is_verified_not_trusted(index: Index, smollm: ChatModel) -> None:
    question = "What does the pass statement do?"
    ans = answer(question, index, smollm, k=3, mode="free", constrained=False, max_tokens=96)
    assert not ans.constrained
    for c in ans.citations:
        if not 1 <= c.marker <= len(ans.passages):
            assert c.checked_against == "nothing" and not c.verified
        else:
            assert c.verified == (c.method in ("exact", "normalized"))
    record: dict[str, Any] = ans.to_dict()
    assert record["constrained"] is False
    json.dumps(record)
