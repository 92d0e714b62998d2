"""``answer``: retrieve, refuse or decode under a grammar, verify, score support.

::

    question -> search k passages --(none relevant)--> the refusal (no model call)
                      |
                      +-- grounded: candidate sentences -> model copies 1..n of them
                      +-- free:     model writes sentences, each citing a quote
                      |
                      +--> verify every quote (verbatim at its span)
                      +--> score every quote's support of its sentence
                      +--> unsupported sentences marked or dropped; none supported: refusal

Two modes, one result type (:class:`~.cite.CitedAnswer`):

* ``grounded`` (the default): the answer is made of sentences of the retrieved
  passages. The grammar (:func:`~.citation_grammar.grounded_grammar`) spells out the
  candidate sentences, the ``max_candidates`` most relevant to the question, and the
  model picks which to copy (or refuses). A sentence is its own quote, so it is
  verbatim and supported by construction; what can still go wrong is the choice.
* ``free``: the model writes its own sentences, each followed by a verbatim quote
  (:func:`~.citation_grammar.citation_grammar`). More fluent, and free to say things
  the quote does not: support is scored, and unsupported sentences are marked
  (``unsupported="mark"``) or dropped (``"drop"``).

Either way the question is first checked against the passages
(:meth:`~.support.SupportScorer.relevance`): when none is about it, the answer is the
refusal and the model is not called, because a small model asked to answer from
passages that do not hold the answer answers anyway.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING

from .base import Passage, Retriever
from .checks import verify_answer
from .citation_grammar import MAX_QUOTE_CHARS, MIN_QUOTE_CHARS, citation_grammar, grounded_grammar
from .cite import (
    AnswerMode,
    CitedAnswer,
    DocumentSource,
    Unsupported,
    cited_answer_messages,
    refusal,
)
from .errors import RetrievalError
from .support import SupportScorer, content_words, default_scorer, split_sentences

if TYPE_CHECKING:
    from slmkit.models import ChatModel

__all__ = ["MAX_CANDIDATE_CHARS", "answer", "candidate_sentences"]

MAX_CANDIDATE_CHARS = 300
"""Longer sentences cost many forced tokens and are rarely one fact."""
_UNDERLINE = re.compile(r"^\s*([*=~^#-])\1{2,}\s*$")
_FENCED = re.compile(  # after a blank line: a ~~~ right under a line underlines a heading
    r"(?:\A|\n[^\S\n]*\n)[^\S\n]*(`{3,}|~{3,}).*?(?:^[^\S\n]*\1[^\n]*$|\Z)", re.M | re.S
)


def _prose(text: str) -> list[str]:
    """The prose sentences of ``text``: code blocks, grammar rules and headings left out.

    A paragraph whose lines are all indented is code (Markdown's and reStructuredText's
    convention, and pydoc's), and so is a Markdown fenced block (up to its closing fence,
    or the end of the chunk); one with ``::=`` is a grammar rule; a sentence must end
    with punctuation, which drops headings and sentences cut off by the chunk boundary.
    """
    out: list[str] = []
    for paragraph in re.split(r"\n[^\S\n]*\n", _FENCED.sub("\n\n", text)):
        lines = [ln for ln in paragraph.splitlines() if ln.strip() and not _UNDERLINE.match(ln)]
        if not lines or all(ln[:2].isspace() for ln in lines) or "::=" in paragraph:
            continue
        out.extend(
            s
            for s in split_sentences("\n".join(lines))
            if s[-1] in ".:!?;)" and len(content_words(s)) >= 3
        )
    return out


def candidate_sentences(
    question: str,
    passages: list[Passage],
    scorer: SupportScorer,
    *,
    max_candidates: int = 8,
    min_chars: int = MIN_QUOTE_CHARS,
    max_chars: int = MAX_CANDIDATE_CHARS,
) -> list[tuple[int, str]]:
    """The ``(passage number, sentence)`` pairs a grounded answer may copy: the prose
    sentences of the passages most relevant to ``question``, most relevant first."""
    pool = [
        (n, s)
        for n, p in enumerate(passages, start=1)
        for s in dict.fromkeys(_prose(p.text))
        if min_chars <= len(s) <= max_chars
    ]
    relevance = scorer.sentence_relevance(question, [s for _, s in pool])
    best = sorted(range(len(pool)), key=lambda i: -relevance[i])[:max_candidates]
    return [pool[i] for i in best]


def answer(
    question: str,
    retriever: Retriever,
    model: ChatModel,
    *,
    k: int = 4,
    mode: AnswerMode = "grounded",
    max_sentences: int = 3,
    min_quote_chars: int = MIN_QUOTE_CHARS,
    max_quote_chars: int = MAX_QUOTE_CHARS,
    max_candidates: int = 8,
    max_tokens: int = 256,
    temperature: float = 0.0,
    seed: int | None = None,
    constrained: bool | None = None,
    scorer: SupportScorer | None = None,
    min_relevance: float | None = None,
    unsupported: Unsupported = "mark",
) -> CitedAnswer:
    """Answer ``question`` from the ``k`` best passages, citing them (see module docs).

    Decoding is grammar-constrained when the model supports Lark grammars
    (``constrained=None``); ``constrained=False`` decodes freely (to measure what the
    grammar buys); ``True`` insists and fails on a model that cannot. Every quote is
    verified and its support scored after decoding either way. ``scorer`` defaults to
    the shared :func:`~.support.default_scorer`; ``min_relevance`` to its
    ``relevance_threshold`` (0 turns the relevance check off). With no passages, or
    none relevant, the answer is the refusal and the model is not called.
    """
    if not isinstance(question, str) or not question.strip():
        raise RetrievalError("the question is empty or not a str", hint="ask something")
    question = question.strip()
    if not callable(getattr(retriever, "search", None)):
        raise RetrievalError(
            f"the retriever is a {type(retriever).__name__}, with no search(query, k)",
            hint="pass an Index (Index.load('runs/my-index')) or any Retriever",
        )
    if not callable(getattr(model, "chat", None)):
        raise RetrievalError(
            f"the model is a {type(model).__name__}, not a ChatModel",
            hint="load one: load_model('llamacpp:smollm2')",
        )
    if k < 1 or max_sentences < 1:
        raise RetrievalError(
            f"k and max_sentences must be at least 1, got {k} and {max_sentences}",
            hint="e.g. k=4 passages, max_sentences=3",
        )
    if mode not in ("grounded", "free"):
        raise RetrievalError(f"unknown answer mode {mode!r}", hint="use 'grounded' or 'free'")
    use_grammar = model.supports_grammar if constrained is None else constrained
    if use_grammar and not model.supports_grammar:
        raise RetrievalError(
            f"{model!r} cannot decode under a grammar, so its quotes cannot be constrained",
            hint="use a llamacpp, transformers or vllm model, or pass constrained=False "
            "(quotes are still verified after decoding)",
        )
    scorer = scorer or default_scorer()
    passages = retriever.search(question, k)
    documents = retriever if isinstance(retriever, DocumentSource) else None

    def refused(reason: str, **meta: float) -> CitedAnswer:
        ans = refusal(
            question, passages, reason, mode=mode, constrained=use_grammar, model=model.name
        )
        return replace(ans, meta={**ans.meta, **meta})

    if not passages:
        return refused("nothing was retrieved")
    relevance = scorer.relevance(question, [f"{p.title}\n{p.text}" for p in passages])
    threshold = scorer.relevance_threshold if min_relevance is None else min_relevance
    if relevance < threshold:
        return refused(
            f"no retrieved passage is about the question "
            f"(relevance {relevance:.2f} < {threshold:.2f})",
            relevance=relevance,
        )
    if mode == "grounded":
        candidates = candidate_sentences(
            question, passages, scorer, max_candidates=max_candidates, min_chars=min_quote_chars
        )
        if not candidates:
            return refused("no retrieved passage has a sentence to quote", relevance=relevance)
        messages = cited_answer_messages(question, passages, mode=mode, candidates=candidates)
        # The relevance check decides refusals here: offered the refusal, the 135M model
        # takes it for answerable questions too (benchmarks/results/citations.md).
        grammar = grounded_grammar(candidates, max_sentences=max_sentences, allow_refusal=False)
    else:
        messages = cited_answer_messages(question, passages)
        grammar = citation_grammar(
            [p.text for p in passages],
            max_sentences=max_sentences,
            min_quote_chars=min_quote_chars,
            max_quote_chars=max_quote_chars,
        )
    started = time.perf_counter()
    out = model.chat(
        messages,
        grammar=grammar if use_grammar else None,
        max_tokens=max_tokens,
        temperature=temperature,
        seed=seed,
    )
    result = verify_answer(
        question,
        out.text,
        passages,
        documents=documents,
        constrained=use_grammar,
        model=model.name,
        latency_s=time.perf_counter() - started,
        mode=mode,
        scorer=scorer,
        unsupported=unsupported,
    )
    meta: dict[str, object] = {"relevance": relevance}
    if result.refused and "refused_by" not in result.meta:
        meta.update(refusal="the model answered that the sources do not say", refused_by="model")
    result = replace(result, meta={**result.meta, **meta})
    # A constrained output that stopped before the grammar was complete was cut off by
    # the token budget, even if every claim so far parsed.
    return result if out.valid or not use_grammar else replace(result, complete=False)
