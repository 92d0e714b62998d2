"""Loaders: each format yields the right text, title and sections, with clear errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from slmkit.models import PathNotFoundError
from slmkit.retrieval import (
    Document,
    RetrievalError,
    as_documents,
    document_from_text,
    load_jsonl,
    load_path,
    load_pdf,
    parse_html,
    parse_markdown,
)

MARKDOWN = """Preamble before any heading.

# Guide

Welcome text.

## Install

Run `pip install slmkit`.

### From source

Clone the repository.

## Use

Call `Index.build`.
"""


def test_markdown_keeps_source_and_finds_heading_sections() -> None:
    doc = parse_markdown(MARKDOWN, id="guide.md")
    assert doc.text == MARKDOWN
    assert doc.title == "Guide"
    headings = [s.heading for s in doc.sections]
    assert headings == [
        "",
        "Guide",
        "Guide > Install",
        "Guide > Install > From source",
        "Guide > Use",
    ]
    install = doc.sections[2]
    assert doc.text[install.start :].startswith("## Install")
    assert doc.sections[-1].end == len(MARKDOWN)


def test_markdown_heading_in_code_block_is_not_a_section() -> None:
    doc = parse_markdown("# Real\n\n```\n# not a heading\n```\n", id="x")
    assert [s.heading for s in doc.sections] == ["Real"]


HTML = """<!doctype html><html><head><title>Page title</title>
<style>p { color: red }</style><script>var secret = 1;</script></head>
<body><nav><a href="/">Home</a> | <a href="/about">About</a></nav>
<h1>Main heading</h1>
<p>First   paragraph with <b>bold</b>
 and <a href="#">a link</a>.</p>
<ul><li>item one</li><li>item two</li></ul>
<pre>code line 1
    indented line 2</pre>
<h2>Second part</h2><p>Line<br>break</p>
<!-- a comment --><footer>Copyright notice</footer></body></html>"""


def test_html_extracts_readable_text_and_drops_chrome() -> None:
    doc = parse_html(HTML, id="page.html")
    assert doc.title == "Page title"
    assert "secret" not in doc.text and "color" not in doc.text
    assert "Home" not in doc.text and "Copyright" not in doc.text and "comment" not in doc.text
    assert "First paragraph with bold and a link." in doc.text
    assert "code line 1\n    indented line 2" in doc.text  # <pre> keeps its layout
    assert "Line\nbreak" in doc.text
    assert "item one\n\nitem two" in doc.text
    assert [s.heading for s in doc.sections] == ["Main heading", "Main heading > Second part"]
    assert doc.text[doc.sections[1].start :].startswith("Second part")


def test_html_prefers_article_content() -> None:
    doc = parse_html(
        "<body><div>sidebar junk</div><article><p>The story.</p></article></body>", id="a"
    )
    assert doc.text == "The story."
    assert doc.title == "a"


def test_pdf_is_read_page_by_page(
    tmp_path: Path, write_pdf: Callable[[Path, list[list[str]]], Path]
) -> None:
    path = write_pdf(
        tmp_path / "report.pdf",
        [["First page, line one.", "Line two."], [], ["Third page (last)."]],
    )
    doc = load_pdf(path)
    assert doc.id == path.as_posix() and doc.title == "report"
    assert doc.meta["pages"] == 3
    assert [s.heading for s in doc.sections] == ["page 1", "page 3"]
    first, third = doc.sections
    assert doc.text[first.start : first.end] == "First page, line one.\nLine two."
    assert doc.text[third.start : third.end] == "Third page (last)."


def test_broken_pdf_is_a_retrieval_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.pdf"
    path.write_bytes(b"%PDF-1.4\nthis is not a pdf")
    with pytest.raises(RetrievalError) as err:
        load_pdf(path)
    assert err.value.hint


def test_jsonl_fields_are_configurable(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    rows = [
        {"key": "a1", "name": "Alpha", "body": "alpha text", "lang": "en"},
        {"name": "Beta", "body": "beta text"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    docs = load_jsonl(path, text_field="body", title_field="name", id_field="key")
    assert [(d.id, d.title, d.text) for d in docs] == [
        ("a1", "Alpha", "alpha text"),
        (f"{path.as_posix()}#2", "Beta", "beta text"),
    ]
    assert docs[0].meta == {"format": "jsonl", "lang": "en"}


def test_jsonl_text_may_hold_unicode_line_separators(tmp_path: Path) -> None:
    """json.dumps(ensure_ascii=False) writes U+2028/U+2029 unescaped; only "\n" ends a
    record (str.splitlines cut such a record in two)."""
    path = tmp_path / "records.jsonl"
    text = "first\u2028second\u2029third"
    path.write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
    assert [d.text for d in load_jsonl(path)] == [text]


def test_jsonl_missing_text_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"title": "no text"}\n', encoding="utf-8")
    with pytest.raises(RetrievalError, match=r"bad.jsonl:2"):
        load_jsonl(path)


def test_folder_loading_dispatches_by_suffix(
    tmp_path: Path, write_pdf: Callable[[Path, list[list[str]]], Path]
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.txt").write_text("plain text", encoding="utf-8")
    (tmp_path / "sub" / "b.md").write_text("# B\n\nmarkdown", encoding="utf-8")
    (tmp_path / "c.html").write_text("<p>html</p>", encoding="utf-8")
    (tmp_path / "d.jsonl").write_text('{"id": "r1", "text": "record"}\n', encoding="utf-8")
    write_pdf(tmp_path / "e.pdf", [["pdf text"]])
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / ".hidden" / "secret.txt").write_text("hidden", encoding="utf-8")
    docs = load_path(tmp_path)
    assert sorted(d.meta["format"] for d in docs) == ["html", "jsonl", "markdown", "pdf", "text"]
    assert {d.id for d in docs} >= {(tmp_path / "sub" / "b.md").as_posix(), "r1"}
    assert all("hidden" not in d.text for d in docs)


def test_unsupported_file_named_directly_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    path.write_bytes(b"\x89PNG")
    with pytest.raises(RetrievalError, match="unsupported file type") as err:
        load_path(path)
    assert ".pdf" in (err.value.hint or "")
    with pytest.raises(PathNotFoundError, match="no file or folder to index"):
        load_path(tmp_path / "missing.txt")


def test_a_folder_with_nothing_to_index_is_an_error(tmp_path: Path) -> None:
    """An index of it would answer nothing; the error says what was skipped and why."""
    with pytest.raises(RetrievalError, match=r"no file to index in the folder .*: none"):
        load_path(tmp_path)
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "Makefile").write_text("all:", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "notes.txt").write_text("hidden", encoding="utf-8")
    with pytest.raises(RetrievalError, match=r"only 2 unsupported \(\(none\), \.png\)") as err:
        as_documents([str(tmp_path)])
    assert err.value.hint and ".md" in err.value.hint and "hidden" in err.value.hint


def test_as_documents_reads_str_as_a_path_and_rejects_duplicates(tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("from a file", encoding="utf-8")
    (tmp_path / "g.txt").write_text("from another", encoding="utf-8")
    text = document_from_text("some text")
    docs = as_documents(
        [text, str(tmp_path / "f.txt"), tmp_path / "g.txt", Document("x", "X", "given")]
    )
    assert [d.text for d in docs] == ["some text", "from a file", "from another", "given"]
    assert docs[0].id.startswith("text:")
    with pytest.raises(PathNotFoundError, match="no file or folder to index") as err:
        as_documents(["some text"])  # a str is a path, never four words to index
    assert "document_from_text" in (err.value.hint or "")
    with pytest.raises(RetrievalError, match="share the id"):
        as_documents([text, text])
    with pytest.raises(RetrievalError, match="type int"):
        as_documents([3])
    for alone in (3, None):  # not an iterable either: the same error, not a TypeError
        with pytest.raises(RetrievalError, match=f"type {type(alone).__name__}"):
            as_documents(alone)  # type: ignore[arg-type]
