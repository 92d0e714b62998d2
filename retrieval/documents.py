"""Documents and the loaders that turn files and strings into them.

A :class:`Document` is the unit a citation points into: ``text`` is the exact string that
chunk and quote offsets refer to. Loaders also record the document's structure as
:class:`Section` spans (Markdown headings, HTML headings, PDF pages) so the chunker can
cut along it without knowing the file format.

Each format uses a maintained parser rather than regexes: markdown-it-py (the CommonMark
reference port) for Markdown, BeautifulSoup over lxml for HTML, pypdf for PDF.
Markdown keeps its source text (a quote is checked against what the author wrote);
HTML and PDF keep the readable text extracted from them, since their raw bytes are not
what a reader, or a model, sees.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.models import existing_path

from .errors import RetrievalError
from .text_files import read_text_file

__all__ = [
    "SUPPORTED_SUFFIXES",
    "Document",
    "Section",
    "as_documents",
    "document_from_text",
    "load_html",
    "load_jsonl",
    "load_markdown",
    "load_path",
    "load_pdf",
    "load_text",
    "parse_html",
    "parse_markdown",
]

_TEXT_HINT = "to index text, pass Document(...) or document_from_text(text)"


@dataclass(frozen=True, slots=True)
class Section:
    """A structural span ``[start, end)`` of a document's text, with its heading path."""

    start: int
    end: int
    heading: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """A source the index can cite: an id, a title, its text, free-form ``meta``.

    ``sections`` are optional structural spans into ``text`` (non-overlapping, in order);
    when empty the chunker falls back to paragraphs.
    """

    id: str
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()

    def __post_init__(self) -> None:
        if not self.id:
            raise RetrievalError("a Document needs a non-empty id", hint="pass id=...")
        if not isinstance(self.text, str):
            raise RetrievalError(
                f"document {self.id!r}: text is a {type(self.text).__name__}, not a str",
                hint="decode bytes first, or load a file with load_path(path)",
            )
        last = 0
        for s in self.sections:
            if not last <= s.start <= s.end <= len(self.text):
                raise RetrievalError(
                    f"document {self.id!r}: section {s} is out of order or outside the text",
                    hint="sections must be non-overlapping spans in increasing order",
                )
            last = s.end


def document_from_text(
    text: str,
    *,
    id: str | None = None,
    title: str | None = None,
    meta: dict[str, Any] | None = None,
) -> Document:
    """Wrap an in-memory string; without ``id`` the id is a hash of the text (stable)."""
    doc_id = id or "text:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return Document(doc_id, title or doc_id, text, {"format": "text", **(meta or {})})


def _document_file(path: str | os.PathLike[str]) -> Path:
    """The file a loader reads: a ``str`` is a path that must exist (see slmkit.models.paths)."""
    return existing_path(path, what="document file", kind="file", hint=_TEXT_HINT)


def load_text(path: str | os.PathLike[str]) -> Document:
    """A plain-text file; structure is found later from blank-line paragraphs."""
    p = _document_file(path)
    return Document(
        p.as_posix(), p.stem, read_text_file(p), {"format": "text", "path": p.as_posix()}
    )


# --- Markdown ---------------------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _line_starts(text: str) -> list[int]:
    """Character offset of each line start, splitting lines the way markdown-it does."""
    return [0] + [m.end() for m in _LINE_BREAK.finditer(text)]


def _heading_sections(text: str, heads: list[tuple[int, int, str]]) -> tuple[Section, ...]:
    """Sections from ``(start, level, heading)`` marks: each runs to the next heading.

    The heading of a section is its path (``"Install > From source"``) because a chunk
    deep in a document is easier to retrieve and to cite with its context.
    """
    sections: list[Section] = []
    if heads and text[: heads[0][0]].strip():
        sections.append(Section(0, heads[0][0], ""))
    elif not heads:
        return ()
    path: list[tuple[int, str]] = []
    for i, (start, level, heading) in enumerate(heads):
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, heading))
        end = heads[i + 1][0] if i + 1 < len(heads) else len(text)
        sections.append(Section(start, end, " > ".join(h for _, h in path if h)))
    return tuple(sections)


def parse_markdown(
    text: str, *, id: str, title: str | None = None, meta: dict[str, Any] | None = None
) -> Document:
    """A Markdown string: the source is kept verbatim, headings become sections.

    The title is ``title`` if given, else the first level-1 heading, else the id.
    """
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    starts = _line_starts(text)
    heads: list[tuple[int, int, str]] = []
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.map is not None and i + 1 < len(tokens):
            heads.append((starts[tok.map[0]], int(tok.tag[1:]), tokens[i + 1].content.strip()))
    first_h1 = next((h for _, level, h in heads if level == 1 and h), None)
    return Document(
        id,
        title or first_h1 or id,
        text,
        {"format": "markdown", **(meta or {})},
        _heading_sections(text, heads),
    )


def load_markdown(path: str | os.PathLike[str]) -> Document:
    """A Markdown file (see :func:`parse_markdown`); without an h1 the title is the stem."""
    p = _document_file(path)
    doc = parse_markdown(read_text_file(p), id=p.as_posix(), meta={"path": p.as_posix()})
    if doc.title == doc.id:
        return Document(doc.id, p.stem, doc.text, doc.meta, doc.sections)
    return doc


# --- HTML -------------------------------------------------------------------------------

_DROP_TAGS = frozenset(
    {
        "script",
        "style",
        "noscript",
        "template",
        "nav",
        "aside",
        "footer",
        "svg",
        "iframe",
        "head",
        "button",
        "select",
        "canvas",
    }
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_BLOCK_TAGS = frozenset(
    {
        "p",
        "div",
        "section",
        "article",
        "main",
        "header",
        "li",
        "ul",
        "ol",
        "dl",
        "dt",
        "dd",
        "pre",
        "blockquote",
        "table",
        "thead",
        "tbody",
        "tr",
        "td",
        "th",
        "figure",
        "figcaption",
        "caption",
        "address",
        "form",
        "fieldset",
        "details",
        "summary",
        "hr",
    }
)
_INLINE_SPACE = re.compile(r"[^\S\n]+")


class _BlockWriter:
    """Collects readable text blocks (paragraphs, headings) while walking an HTML tree."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, int]] = []  # (text, heading level or 0)
        self._buf: list[str] = []

    def write(self, s: str) -> None:
        self._buf.append(s)

    def flush(self, *, level: int = 0, pre: bool = False) -> None:
        raw = "".join(self._buf)
        self._buf.clear()
        if pre:
            text = raw.strip("\n").rstrip()
        else:
            text = "\n".join(_INLINE_SPACE.sub(" ", ln).strip() for ln in raw.split("\n"))
            text = re.sub(r"\n{2,}", "\n", text).strip()
        if text.strip():
            self.blocks.append((text, level))


def _walk_html(node: Any, out: _BlockWriter, *, pre: bool = False) -> None:
    from bs4.element import NavigableString, PreformattedString, Tag

    for child in node.children:
        if isinstance(child, PreformattedString):  # comments, doctype, CDATA
            continue
        if isinstance(child, NavigableString):
            out.write(str(child) if pre else _INLINE_SPACE.sub(" ", str(child).replace("\n", " ")))
        elif isinstance(child, Tag):
            name = child.name.lower()
            if name in _DROP_TAGS:
                continue
            if name == "br":
                out.write("\n")
            elif name in _HEADINGS:
                out.flush(pre=pre)
                _walk_html(child, out, pre=pre)
                out.flush(level=int(name[1]))
            elif name in _BLOCK_TAGS:
                out.flush(pre=pre)
                _walk_html(child, out, pre=pre or name == "pre")
                out.flush(pre=pre or name == "pre")
            else:
                _walk_html(child, out, pre=pre)


def parse_html(
    html: str | bytes, *, id: str, title: str | None = None, meta: dict[str, Any] | None = None
) -> Document:
    """An HTML page reduced to its readable text.

    Scripts, styles, navigation, asides and footers are dropped; if the page has an
    ``<article>`` or ``<main>`` only that is read. Blocks are separated by blank lines and
    headings become sections. The title is ``title``, else ``<title>``, else the first h1.
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "lxml")
    page_title = soup.title.get_text(" ", strip=True) if soup.title else ""
    h1 = soup.find("h1")
    root = soup.find("article") or soup.find("main") or soup.body or soup
    out = _BlockWriter()
    _walk_html(root, out)
    out.flush()
    parts: list[str] = []
    heads: list[tuple[int, int, str]] = []
    pos = 0
    for text, level in out.blocks:
        if parts:
            pos += 2
        if level:
            heads.append((pos, level, " ".join(text.split())))
        parts.append(text)
        pos += len(text)
    body = "\n\n".join(parts)
    best_title = title or page_title or (h1.get_text(" ", strip=True) if h1 else "") or id
    return Document(
        id, best_title, body, {"format": "html", **(meta or {})}, _heading_sections(body, heads)
    )


def load_html(path: str | os.PathLike[str]) -> Document:
    """An HTML file (see :func:`parse_html`); lxml sniffs the encoding from the bytes."""
    p = _document_file(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise RetrievalError(f"cannot read {p}: {exc}", hint="check the path") from exc
    doc = parse_html(raw, id=p.as_posix(), meta={"path": p.as_posix()})
    if doc.title == doc.id:
        return Document(doc.id, p.stem, doc.text, doc.meta, doc.sections)
    return doc


# --- PDF --------------------------------------------------------------------------------


def load_pdf(path: str | os.PathLike[str]) -> Document:
    """A PDF's text layer, page by page: each page is a section named ``"page N"``.

    Pages are joined with a blank line; a scanned PDF without a text layer yields an
    empty document (OCR is out of scope), which the index then simply has no chunks for.
    """
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    p = _document_file(path)
    try:
        reader = PdfReader(p)
        pages = [(page.extract_text() or "").strip() for page in reader.pages]
        meta_title = reader.metadata.title if reader.metadata else None
    except (OSError, PyPdfError) as exc:
        raise RetrievalError(
            f"cannot read PDF {p}: {exc}",
            hint="the file may be encrypted or damaged; export its text to .txt and index that",
        ) from exc
    sections: list[Section] = []
    pos = 0
    for n, page_text in enumerate(pages, start=1):
        if n > 1:
            pos += 2
        if page_text:
            sections.append(Section(pos, pos + len(page_text), f"page {n}"))
        pos += len(page_text)
    return Document(
        p.as_posix(),
        (meta_title or "").strip() or p.stem,
        "\n\n".join(pages),
        {"format": "pdf", "path": p.as_posix(), "pages": len(pages)},
        tuple(sections),
    )


# --- JSONL ------------------------------------------------------------------------------


def load_jsonl(
    path: str | os.PathLike[str],
    *,
    text_field: str = "text",
    title_field: str = "title",
    id_field: str = "id",
) -> list[Document]:
    """One document per JSON object line; other fields of the record go to ``meta``.

    A record without ``id_field`` gets ``"<path>#<line>"``; without ``title_field`` its
    title is its id. A record without ``text_field`` is an error naming the line.
    """
    p = _document_file(path)
    docs: list[Document] = []
    for lineno, line in enumerate(read_text_file(p).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise RetrievalError(
                f"{p}:{lineno}: not valid JSON ({exc.msg})", hint="one JSON object per line"
            ) from exc
        if not isinstance(rec, dict) or not isinstance(rec.get(text_field), str):
            raise RetrievalError(
                f"{p}:{lineno}: record has no string field {text_field!r}",
                hint="pass text_field= naming the field that holds the text",
            )
        doc_id = str(rec[id_field]) if rec.get(id_field) is not None else f"{p.as_posix()}#{lineno}"
        title = str(rec.get(title_field) or doc_id)
        meta = {k: v for k, v in rec.items() if k not in (text_field, title_field, id_field)}
        docs.append(Document(doc_id, title, rec[text_field], {"format": "jsonl", **meta}))
    return docs


# --- dispatch ---------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[Path], list[Document]]] = {
    ".txt": lambda p: [load_text(p)],
    ".text": lambda p: [load_text(p)],
    ".rst": lambda p: [load_text(p)],
    ".md": lambda p: [load_markdown(p)],
    ".markdown": lambda p: [load_markdown(p)],
    ".html": lambda p: [load_html(p)],
    ".htm": lambda p: [load_html(p)],
    ".xhtml": lambda p: [load_html(p)],
    ".pdf": lambda p: [load_pdf(p)],
    ".jsonl": lambda p: load_jsonl(p),
    ".ndjson": lambda p: load_jsonl(p),
}
SUPPORTED_SUFFIXES = frozenset(_LOADERS)


def load_path(path: str | os.PathLike[str]) -> list[Document]:
    """Load a file by its suffix, or every supported file under a folder (sorted, recursive).

    Hidden files and folders are skipped; in a folder, unsupported files are skipped,
    while an unsupported file named directly is an error, and so is a folder with no
    supported file (an index of it would silently answer nothing).
    """
    p = existing_path(path, what="file or folder to index", hint=_TEXT_HINT)
    if p.is_dir():
        visible = sorted(
            f
            for f in p.rglob("*")
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
        )
        files = [f for f in visible if f.suffix.lower() in _LOADERS]
        if not files:
            skipped = sorted({f.suffix.lower() or "(none)" for f in visible})
            found = f"only {len(visible)} unsupported ({', '.join(skipped)})" if visible else "none"
            raise RetrievalError(
                f"no file to index in the folder {p}: {found}",
                hint="supported: " + ", ".join(sorted(_LOADERS)) + "; hidden files are skipped",
            )
        return [doc for f in files for doc in _LOADERS[f.suffix.lower()](f)]
    loader = _LOADERS.get(p.suffix.lower())
    if loader is None:
        raise RetrievalError(
            f"cannot index {p}: unsupported file type {p.suffix or '(none)'!r}",
            hint="supported: " + ", ".join(sorted(_LOADERS)),
        )
    return loader(p)


def as_documents(sources: Document | str | os.PathLike[str] | Iterable[Any]) -> list[Document]:
    """Normalize what ``Index.build``/``add`` accept into a list of documents.

    A :class:`Document` is used as is; a path (``str`` or ``os.PathLike``) is loaded with
    :func:`load_path`. A ``str`` is always a path, never text: a name that does not exist
    is a :class:`~slmkit.models.PathNotFoundError`, so ``Index.build("docs")`` indexes the
    folder or fails, and never indexes the four letters. Text goes in a
    :class:`Document` (:func:`document_from_text` makes one).
    Duplicate ids are an error: ``delete(source_id)`` must name one document.
    """
    items: Iterable[Any] = (  # one source, or a non-iterable that is refused below by type
        sources if isinstance(sources, Iterable) and not isinstance(sources, str) else [sources]
    )
    docs: list[Document] = []
    for item in items:
        if isinstance(item, Document):
            docs.append(item)
        elif isinstance(item, str | os.PathLike):
            docs.extend(load_path(item))
        else:
            raise RetrievalError(
                f"cannot index an object of type {type(item).__name__}",
                hint="pass Document objects or paths (str or pathlib.Path) of files or folders",
            )
    seen: set[str] = set()
    for doc in docs:
        if doc.id in seen:
            raise RetrievalError(
                f"two documents share the id {doc.id!r}",
                hint="give each document a unique id (ids name what delete() removes)",
            )
        seen.add(doc.id)
    return docs
