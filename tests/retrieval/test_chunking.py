"""Chunk offsets reproduce the source text exactly, over many generated documents.

Property-style: documents of every format are generated from a seeded RNG (headings,
paragraphs, very long unpunctuated sentences, Unicode, CRLF, odd whitespace), chunked
with many size settings, and every chunk must be an exact, trimmed slice of its
document; together the chunks must cover all non-blank text and respect the budget.
"""

from __future__ import annotations

import html
import itertools
import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from slmkit.retrieval import (
    Chunk,
    ChunkingConfig,
    Document,
    Embedder,
    chunk_document,
    document_from_text,
    load_jsonl,
    load_pdf,
    parse_html,
    parse_markdown,
)
from slmkit.retrieval.chunking import TokenSpans, word_spans

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "naïve",
    "café",
    "Zürich",
    "東京",
    "emoji🙂",
    "x",
    "a",
    "supercalifragilistic",
    "e\u0301t\u00e9",
    "don't",
    "(paren)",
    "1,234.5",
    "co-op",
    "“quoted”",
    "tab\tbed",
    "—",
    "ﬁne",
    "C++",
    "[1]",
]
LATIN1_WORDS = [
    "alpha",
    "beta",
    "gamma",
    "cafe",
    "naive",
    "x",
    "a",
    "word",
    "(paren)",
    "1,234.5",
    "co-op",
    "don't",
    "longerword",
]
SEPARATORS = ["\n\n", "\n \n", "\r\n\r\n", "\n\n\n", "\n", "  \n\t\n", " \n\n "]


def sentence(rng: random.Random, words: list[str], n: int) -> str:
    return " ".join(rng.choice(words) for _ in range(n)) + rng.choice([".", "!", "?", ""])


def blocks(rng: random.Random, words: list[str]) -> list[tuple[str, str]]:
    """``(kind, text)`` blocks: headings, paragraphs, long run-on sentences."""
    out: list[tuple[str, str]] = []
    for _ in range(rng.randint(0, 12)):
        roll = rng.random()
        if roll < 0.15:
            out.append(("heading", sentence(rng, words, rng.randint(1, 5))))
        elif roll < 0.25:
            out.append(("para", sentence(rng, words, rng.randint(150, 400))))
        else:
            out.append(
                (
                    "para",
                    " ".join(
                        sentence(rng, words, rng.randint(1, 30)) for _ in range(rng.randint(1, 8))
                    ),
                )
            )
    return out


def plain(rng: random.Random, parts: list[tuple[str, str]]) -> str:
    text = "".join(p + rng.choice(SEPARATORS) for _, p in parts)
    return rng.choice(["", " ", "\n"]) + text


def as_markdown(rng: random.Random, parts: list[tuple[str, str]]) -> str:
    return plain(
        rng, [(k, "#" * rng.randint(1, 4) + " " + t if k == "heading" else t) for k, t in parts]
    )


def as_html(rng: random.Random, parts: list[tuple[str, str]]) -> str:
    body = []
    for kind, text in parts:
        escaped = html.escape(text)
        if kind == "heading":
            body.append(f"<h{rng.randint(1, 4)}>{escaped}</h{rng.randint(1, 4)}>")
        elif rng.random() < 0.2:
            body.append(f"<pre>{escaped}\n  indented</pre>")
        else:
            body.append(f"<p>{escaped.replace(' ', ' <b>', 1)}</b>\n  more</p>")
    head = "<head><title>t</title><script>x()</script></head>"
    return f"<html>{head}<body>{''.join(body)}</body></html>"


def check_chunks(
    doc: Document, chunks: list[Chunk], cfg: ChunkingConfig, count: TokenSpans
) -> None:
    for ordinal, c in enumerate(chunks):
        assert doc.text[c.start : c.end] == c.text
        assert c.text and c.text == c.text.strip()
        assert (c.source_id, c.title, c.ordinal) == (doc.id, doc.title, ordinal)
        n = len(count(c.text))
        assert n <= cfg.max_tokens or len(c.text.split()) == 1, (n, c.text[:80])
    for before, after in itertools.pairwise(chunks):
        assert before.start < after.start and before.end < after.end
    covered = bytearray(len(doc.text))
    for c in chunks:
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    spans = [(s.start, s.end) for s in doc.sections] or [(0, len(doc.text))]
    for start, end in spans:
        for i in range(start, end):
            assert covered[i] or doc.text[i].isspace(), f"lost {doc.text[i]!r} at {i}"


CONFIGS = [
    ChunkingConfig(max_tokens=8, overlap=0, min_tokens=0),
    ChunkingConfig(max_tokens=16, overlap=5),
    ChunkingConfig(max_tokens=40, overlap=39, min_tokens=3),
    ChunkingConfig(),
]


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_chunk_offsets_are_exact_for_generated_documents(fmt: str) -> None:
    rng = random.Random(f"chunks-{fmt}")
    for n in range(120):
        parts = blocks(rng, WORDS)
        if fmt == "text":
            doc = document_from_text(plain(rng, parts), id=f"d{n}")
        elif fmt == "markdown":
            doc = parse_markdown(as_markdown(rng, parts), id=f"d{n}.md")
        else:
            doc = parse_html(as_html(rng, parts), id=f"d{n}.html")
        for cfg in CONFIGS:
            check_chunks(doc, chunk_document(doc, cfg), cfg, word_spans)


def test_chunk_offsets_are_exact_for_pdf_and_jsonl(
    tmp_path: Path, write_pdf: Callable[[Path, list[list[str]]], Path]
) -> None:
    rng = random.Random("chunks-files")
    records = []
    for n in range(6):
        pages = [
            [sentence(rng, LATIN1_WORDS, rng.randint(1, 12)) for _ in range(rng.randint(0, 30))]
            for _ in range(rng.randint(1, 4))
        ]
        doc = load_pdf(write_pdf(tmp_path / f"f{n}.pdf", pages))
        assert doc.text.split() == [w for page in pages for line in page for w in line.split()]
        for cfg in CONFIGS:
            check_chunks(doc, chunk_document(doc, cfg), cfg, word_spans)
        records.append({"id": f"r{n}", "text": plain(rng, blocks(rng, WORDS))})
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    for doc in load_jsonl(path):
        for cfg in CONFIGS:
            check_chunks(doc, chunk_document(doc, cfg), cfg, word_spans)


def test_embedder_token_budget(embedder: Embedder) -> None:
    rng = random.Random("chunks-embedder")
    cfg = ChunkingConfig(max_tokens=48, overlap=8, tokens="embedder")
    for n in range(15):
        doc = parse_markdown(as_markdown(rng, blocks(rng, WORDS)), id=f"e{n}")
        chunks = chunk_document(doc, cfg, token_spans=embedder.token_spans)
        check_chunks(doc, chunks, cfg, embedder.token_spans)


def test_structure_comes_before_size() -> None:
    text = "# A\n\nFirst section text.\n\n# B\n\nSecond section text.\n"
    doc = parse_markdown(text, id="s.md")
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=100, min_tokens=0))
    assert [c.text for c in chunks] == ["# A\n\nFirst section text.", "# B\n\nSecond section text."]
    assert [c.section for c in chunks] == ["A", "B"]
    assert [c.chunk_id for c in chunks] == ["s.md#0", "s.md#1"]


def test_long_text_splits_at_sentences_with_overlap() -> None:
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(12)]
    doc = document_from_text(" ".join(sentences), id="long")
    chunks = chunk_document(doc, ChunkingConfig(max_tokens=21, overlap=7))
    assert all(c.text.endswith(".") for c in chunks)
    assert chunks[0].text == " ".join(sentences[:3])
    assert chunks[1].text.startswith(sentences[2])  # one whole sentence of overlap


def test_blank_document_has_no_chunks_and_config_is_validated() -> None:
    assert chunk_document(document_from_text(" \n\n\t ", id="blank")) == []
    with pytest.raises(ValidationError):
        ChunkingConfig(max_tokens=10, overlap=10)
