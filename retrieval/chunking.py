"""Cut documents into chunks: by structure first, then by size.

Structure comes from the document's sections (headings, PDF pages), then blank-line
paragraphs, then sentences; only a sentence longer than the budget is cut between words.
Units are packed greedily up to ``max_tokens`` and consecutive chunks share up to
``overlap`` tokens of whole units, so a fact that straddles a boundary is still whole in
one chunk.

Every chunk is a span ``[start, end)`` of ``Document.text`` and its ``text`` is exactly
that slice: nothing is re-joined or re-spaced, so a quote found in a chunk is found at
a known place in the source.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .documents import Document, Section

__all__ = ["Chunk", "ChunkingConfig", "TokenSpans", "chunk_document", "word_spans"]

TokenSpans = Callable[[str], list[tuple[int, int]]]
"""Maps a text to the character spans of its tokens (what the size budget counts)."""

_WORD = re.compile(r"\S+")
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")


def word_spans(text: str) -> list[tuple[int, int]]:
    """Whitespace-separated words: a cheap, tokenizer-free proxy for token counts."""
    return [m.span() for m in _WORD.finditer(text)]


class ChunkingConfig(BaseModel):
    """How to size chunks.

    ``max_tokens`` defaults to 128 words, which keeps a chunk (plus its title) inside
    all-MiniLM-L6-v2's 256-wordpiece window for ordinary English; ``tokens="embedder"``
    counts with the embedder's own tokenizer instead, for exact budgets. ``min_tokens``
    folds sections smaller than that (a lone heading line) into the next section rather
    than making a chunk that says nothing.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_tokens: int = Field(default=128, ge=8, description="token budget of one chunk")
    overlap: int = Field(default=24, ge=0, description="tokens shared by consecutive chunks")
    min_tokens: int = Field(default=8, ge=0, description="smaller sections merge into the next")
    tokens: Literal["words", "embedder"] = Field(
        default="words", description="count words, or the embedder tokenizer's tokens"
    )

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> ChunkingConfig:
        if self.overlap >= self.max_tokens:
            raise ValueError("overlap must be smaller than max_tokens")
        return self


@dataclass(frozen=True, slots=True)
class Chunk:
    """A span ``[start, end)`` of document ``source_id``; ``text`` is exactly that slice."""

    source_id: str
    ordinal: int
    title: str
    section: str
    text: str
    start: int
    end: int

    @property
    def chunk_id(self) -> str:
        """Stable, readable id: ``"<source_id>#<ordinal>"``."""
        return f"{self.source_id}#{self.ordinal}"


@dataclass(frozen=True, slots=True)
class _Unit:
    start: int
    end: int
    tokens: int


def _trimmed(text: str, start: int, end: int) -> tuple[int, int] | None:
    """``[start, end)`` without surrounding whitespace, or None when all blank."""
    piece = text[start:end]
    stripped = piece.lstrip()
    if not stripped:
        return None
    start += len(piece) - len(stripped)
    return start, start + len(stripped.rstrip())


def _split(text: str, start: int, end: int, sep: re.Pattern[str]) -> list[tuple[int, int]]:
    """Non-blank pieces of ``text[start:end]`` between matches of ``sep`` (absolute spans)."""
    spans: list[tuple[int, int]] = []
    pos = start
    for m in sep.finditer(text, start, end):
        if (span := _trimmed(text, pos, m.start())) is not None:
            spans.append(span)
        pos = m.end()
    if (span := _trimmed(text, pos, end)) is not None:
        spans.append(span)
    return spans


def _units(text: str, start: int, end: int, budget: int, count: TokenSpans) -> list[_Unit]:
    """Paragraphs that fit the budget; else their sentences; else a long sentence's words."""
    units: list[_Unit] = []
    for p_start, p_end in _split(text, start, end, _PARAGRAPH_BREAK):
        n = len(count(text[p_start:p_end]))
        if n <= budget:
            units.append(_Unit(p_start, p_end, n))
            continue
        for s_start, s_end in _split(text, p_start, p_end, _SENTENCE_BREAK):
            sentence = text[s_start:s_end]
            tokens = count(sentence)
            if len(tokens) <= budget:
                units.append(_Unit(s_start, s_end, len(tokens)))
                continue
            # Charge each token to the word it starts in, so cuts fall between words.
            words = word_spans(sentence)
            per_word = [0] * len(words)
            w = 0
            for t_start, _ in tokens:
                while w + 1 < len(words) and words[w + 1][0] <= t_start:
                    w += 1
                per_word[w] += 1
            units.extend(
                _Unit(s_start + a, s_start + b, max(per_word[i], 1))
                for i, (a, b) in enumerate(words)
            )
    return units


def _pack(units: list[_Unit], budget: int, overlap: int) -> list[tuple[int, int]]:
    """Greedy packing of units into ``(first, last)`` runs, carrying back ``overlap`` tokens."""
    runs: list[tuple[int, int]] = []
    i = 0
    while i < len(units):
        j, total = i, 0
        while j < len(units) and (j == i or total + units[j].tokens <= budget):
            total += units[j].tokens
            j += 1
        runs.append((i, j - 1))
        if j == len(units):
            break
        # Carry back whole units, but only as many as still leave room for unit j:
        # otherwise the next chunk would be a subset of this one.
        k, shared = j, 0
        while k - 1 > i:
            grown = shared + units[k - 1].tokens
            if grown > overlap or grown + units[j].tokens > budget:
                break
            shared = grown
            k -= 1
        i = k
    return runs


def _merged_sections(doc: Document, min_tokens: int, count: TokenSpans) -> list[Section]:
    """The document's sections (or the whole text), tiny ones folded into the next."""
    sections = list(doc.sections) or [Section(0, len(doc.text), "")]
    merged: list[Section] = []
    carry: int | None = None
    for i, s in enumerate(sections):
        start = s.start if carry is None else carry
        last = i == len(sections) - 1
        if not last and len(count(doc.text[start : s.end])) < min_tokens:
            carry = start
            continue
        merged.append(Section(start, s.end, s.heading))
        carry = None
    return merged


def chunk_document(
    doc: Document, config: ChunkingConfig | None = None, *, token_spans: TokenSpans = word_spans
) -> list[Chunk]:
    """Chunks of ``doc`` in reading order; an all-blank document has none.

    ``token_spans`` defines what a token is for ``max_tokens``/``overlap`` (words by
    default; ``Embedder.token_spans`` for the model's tokenizer).
    """
    cfg = config or ChunkingConfig()
    chunks: list[Chunk] = []
    for section in _merged_sections(doc, cfg.min_tokens, token_spans):
        units = _units(doc.text, section.start, section.end, cfg.max_tokens, token_spans)
        for first, last in _pack(units, cfg.max_tokens, cfg.overlap):
            start, end = units[first].start, units[last].end
            chunks.append(
                Chunk(
                    doc.id, len(chunks), doc.title, section.heading, doc.text[start:end], start, end
                )
            )
    return chunks
