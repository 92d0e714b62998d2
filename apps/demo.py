"""The Gradio demo: ask a document collection, get answers whose quotes are checked.

The chat shows answers with inline markers (``[1]``); the sources panel shows each cited
passage with the quoted words highlighted in context and two badges per quote, for two
separate facts: **verbatim** (the verifier found the quote at its span in the source)
and **supports** (the quote backs the sentence that cites it, by the support score).
Sentences no quote supports are flagged in the chat; an answer with none, or a question
no passage is about, gets the refusal and says why. Answers are *grounded* by default
(sentences copied from the passages under a grammar); *free* answers can be chosen in
the page. Retrieved-but-uncited passages are listed apart. Users can upload files,
which are indexed for their session only.

With no index given, the demo indexes the Python language reference that ships with
CPython (``pydoc_data.topics``) once, into ``slmkit.models.cache_dir("demo-index")``,
and reuses it afterwards, so it starts in seconds and never needs the network. It binds
127.0.0.1 unless told otherwise, because uploads and the model are then reachable only
from this machine.
"""

from __future__ import annotations

import hashlib
import html
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from slmkit.models import DEFAULT_SPEC, ChatModel, SlmkitError, cache_dir
from slmkit.retrieval import (
    MANIFEST_NAME,
    SUPPORTED_SUFFIXES,
    AnswerMode,
    Citation,
    CitedAnswer,
    Document,
    Embedder,
    Index,
    Passage,
    answer,
    load_path,
)

__all__ = [
    "DemoConfig",
    "build_demo",
    "default_index",
    "launch",
    "pydoc_documents",
    "render_chat",
    "render_sources",
]

Status = Callable[[str], None]

_BEFORE_CHARS, _AFTER_CHARS = 160, 320  # passage text shown around quotes in the panel
_EMPTY_PANEL = '<div class="slm-sources"><p class="slm-note">Sources appear here.</p></div>'


class DemoConfig(BaseModel):
    """The demo's index, model and limits (``agentctl demo`` flags map onto these)."""

    model_config = ConfigDict(extra="forbid")

    index: Path | None = Field(default=None, description="index folder (default: pydoc corpus)")
    model: str = DEFAULT_SPEC
    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=1, le=65535)
    k: int = Field(default=4, ge=1, le=10)
    mode: AnswerMode = Field(
        default="grounded",
        description="grounded: sentences copied from the passages; free: the model's own words",
    )
    max_question_chars: int = Field(default=500, ge=20)
    max_upload_mb: float = Field(default=10.0, gt=0)
    max_upload_files: int = Field(default=20, ge=1)


# --- the default corpus -------------------------------------------------------------------


def _topic_title(name: str, text: str) -> str:
    """A topic's heading line (underlined with ``*`` in pydoc's text), else its name."""
    lines = text.splitlines()
    if len(lines) > 1 and lines[1].startswith("***") and lines[0].strip():
        return lines[0].strip()
    return name


def pydoc_documents(names: Iterable[str] | None = None) -> list[Document]:
    """The Python language reference topics shipped with CPython, one document each."""
    from pydoc_data.topics import topics

    chosen = sorted(topics) if names is None else list(names)
    unknown = [n for n in chosen if n not in topics]
    if unknown:
        raise SlmkitError(
            f"no pydoc topic {unknown[0]!r}",
            hint="topics are the keys of pydoc_data.topics.topics, e.g. 'assert', 'for'",
        )
    return [
        Document(
            f"pydoc:{n}",
            _topic_title(n, topics[n]),
            topics[n],
            {"format": "pydoc", "topic": n},
        )
        for n in chosen
    ]


def default_index(
    names: Iterable[str] | None = None,
    *,
    embedder: Embedder | None = None,
    rebuild: bool = False,
    status: Status | None = None,
) -> Index:
    """The cached index of the pydoc topics (all, or ``names``); built on first use.

    The cache folder is named after the Python version and a digest of the topic texts
    and embedder, so a new CPython or another embedder gets its own index. A cached
    folder that fails to load is rebuilt rather than trusted.
    """
    docs = pydoc_documents(names)
    emb = embedder or Embedder()
    digest = hashlib.sha256(emb.name.encode())
    for doc in docs:
        digest.update(doc.id.encode() + b"\0" + doc.text.encode("utf-8", "surrogatepass"))
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    folder = cache_dir("demo-index") / f"pydoc-py{version}-{digest.hexdigest()[:12]}"
    if not rebuild and (folder / MANIFEST_NAME).exists():
        try:
            return Index.load(folder, embedder=emb)
        except SlmkitError as exc:
            if status:
                status(f"cached demo index unusable ({exc.message}); rebuilding")
    if status:
        status(f"indexing {len(docs)} Python reference topics into {folder} (once)")
    return Index.build(docs, path=folder, embedder=emb, overwrite=True)


# --- rendering ----------------------------------------------------------------------------


def _badge(fact: str, ok: bool | None, label: str, why: str) -> str:
    cls = {True: "slm-yes", False: "slm-no", None: "slm-unknown"}[ok]
    mark = {True: "✓", False: "✗", None: "?"}[ok]
    return (
        f'<span class="slm-badge {cls}" data-fact="{fact}" title="{html.escape(why)}">'
        f"{mark} {label}</span>"
    )


def _badges(c: Citation) -> str:
    """Two badges, two facts: is the quote verbatim, does it support its sentence."""
    if c.verified:
        verbatim = _badge("verbatim", True, "verbatim", f"found in the source ({c.method} match)")
    else:
        why = (
            f"closest source text is {c.score:.0%} similar"
            if c.method == "fuzzy"
            else "not found in the source"
        )
        verbatim = _badge("verbatim", False, "not verbatim", why)
    if c.supports is None:
        support = _badge("supports", None, "support not scored", "no support score")
    elif not c.verified:
        support = _badge("supports", False, "supports nothing", "a quote not in the source")
    else:
        why = (
            f"support {c.support:.2f}: {c.support_lexical or 0:.0%} of the sentence's "
            f"words are in the quote, meaning similarity {c.support_semantic or 0:.2f}"
        )
        label = "supports its sentence" if c.supports else "does not support its sentence"
        support = _badge("supports", c.supports, label, why)
    return verbatim + support


def _window(text: str, first: int, last: int) -> tuple[int, int]:
    """The part of ``text`` to show around quotes spanning ``[first, last)``.

    A little before (at most ``_BEFORE_CHARS`` and two line breaks: code and hard-wrapped
    text are tall) and more after, cut at whitespace, so the highlight is in view.
    """
    lo = max(0, first - _BEFORE_CHARS)
    breaks = [i for i in range(first - 1, lo - 1, -1) if text[i] == "\n"]
    if len(breaks) > 2:
        lo = breaks[2] + 1
    if lo > 0 and not text[lo - 1].isspace():
        space = text.find(" ", lo)
        lo = space + 1 if 0 <= space < first else lo
    hi = min(len(text), last + _AFTER_CHARS)
    if hi < len(text):
        space = text.rfind(" ", last, hi)
        hi = space if space > last else hi
    return lo, hi


def _highlighted(p: Passage, citations: list[Citation]) -> str:
    """The passage around its located quotes, escaped, each quote wrapped in ``<mark>``."""
    text = p.text
    spans = sorted(
        (max(c.start, p.start) - p.start, min(c.end, p.end) - p.start)
        for c in citations
        if c.start is not None and c.end is not None and c.start < p.end and c.end > p.start
    )
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    lo, hi = _window(text, merged[0][0], merged[-1][1]) if merged else (0, len(text))
    out = ["…" if lo else ""]
    pos = lo
    for a, b in merged:
        out.append(html.escape(text[pos:a]))
        out.append(f"<mark>{html.escape(text[a:b])}</mark>")
        pos = b
    out.append(html.escape(text[pos:hi]))
    out.append("…" if hi < len(text) else "")
    return "".join(out).strip()


def _quote_block(ans: CitedAnswer, c: Citation) -> str:
    """A quote with its two badges and, when it is not the sentence itself, the sentence."""
    quote = " ".join(c.quote.split())
    sentence = ans.sentences[c.sentence] if c.sentence < len(ans.sentences) else ""
    claim = (
        f'<div class="slm-claim">cited for: “{html.escape(sentence)}”</div>'
        if sentence and sentence != quote
        else ""
    )
    return f'<div class="slm-quote">“{html.escape(quote)}”{_badges(c)}{claim}</div>'


def _source_head(number: int, p: Passage) -> str:
    where = html.escape(p.source_id + (f" · {p.section}" if p.section else ""))
    return (
        f'<div class="slm-head"><span class="slm-marker">[{number}]</span> '
        f'<b>{html.escape(p.title)}</b> <span class="slm-id">{where}</span></div>'
    )


def render_sources(ans: CitedAnswer | None) -> str:
    """The sources panel for ``ans``: cited passages with quotes, then the uncited ones."""
    if ans is None:
        return _EMPTY_PANEL
    parts = ['<div class="slm-sources">']
    if ans.refused:
        why = str(ans.meta.get("refusal") or "the model found no answer in the sources")
        parts.append(f'<p class="slm-note slm-refusal">Refused: {html.escape(why)}.</p>')
        held = ans.meta.get("withheld")
        if held:
            parts.append(
                '<div class="slm-withheld"><h3>Withheld draft</h3>'
                f'<p class="slm-claim">{html.escape(held["text"])}</p>'
                + "".join(
                    f'<div class="slm-quote">[{c["marker"]}] '
                    f"“{html.escape(' '.join(c['quote'].split()))}”"
                    f"{_badges(Citation(**c))}</div>"
                    for c in held["citations"]
                )
                + "</div>"
            )
    if ans.cited_passages:
        parts.append("<h3>Cited sources</h3>")
    for number, p in ans.cited_passages.items():
        cites = ans.citations_for(number)
        parts.append(f'<div class="slm-source" data-marker="{number}">{_source_head(number, p)}')
        parts.extend(_quote_block(ans, c) for c in cites)
        parts.append(f'<div class="slm-context">{_highlighted(p, cites)}</div></div>')
    for c in ans.citations:
        if c.checked_against == "nothing":
            parts.append(
                f'<div class="slm-source"><span class="slm-marker">[{c.marker}]</span> names no '
                f"retrieved passage: “{html.escape(c.quote)}”{_badges(c)}</div>"
            )
    if ans.uncited_passages:
        parts.append("<h3>Retrieved, not cited</h3>")
        parts.extend(
            f'<details class="slm-uncited"><summary>[{n}] {html.escape(p.title)} '
            f'<span class="slm-id">{html.escape(p.source_id)}</span></summary>'
            f'<div class="slm-context">{html.escape(p.text.strip())}</div></details>'
            for n, p in ans.uncited_passages.items()
        )
    parts.append("</div>")
    return "".join(parts)


def render_chat(ans: CitedAnswer) -> str:
    """The answer as a chat message: sentences with markers, unsupported ones flagged,
    then what was checked, as two separate counts."""
    if ans.refused:
        why = ans.meta.get("refusal")
        held = (
            " The draft is shown, withheld, next to its sources." if "withheld" in ans.meta else ""
        )
        return ans.text + (f"\n\n*Refused: {why}.{held}*" if why else "")
    lines = []
    for i, sentence in enumerate(ans.sentences):
        markers = "".join(
            f"[{m}]" for m in dict.fromkeys(c.marker for c in ans.citations_for_sentence(i))
        )
        flag = ""
        if i < len(ans.sentence_supported) and not ans.sentence_supported[i]:
            flag = " ⚠️ *not supported by its quote*"
        lines.append(f"{sentence} {markers}".strip() + flag)
    verbatim = sum(c.verified for c in ans.citations)
    note = f"{verbatim} of {len(ans.citations)} quotes verbatim in their sources"
    if ans.sentence_supported:
        note += (
            f"; {sum(ans.sentence_supported)} of {len(ans.sentence_supported)} sentences "
            "supported by their quotes"
        )
    if ans.mode == "grounded":
        note = "Grounded answer, sentences copied from the sources. " + note
    if not ans.complete:
        note += "; the answer was cut off"
    return "\n".join(lines) + f"\n\n*{note}.*"


def _describe(index: Index, label: str) -> str:
    m = index.manifest
    return f"Searching **{label}**: {m.documents} documents, {m.chunks} passages."


# --- the app ------------------------------------------------------------------------------


def _uploaded_documents(files: list[str], cfg: DemoConfig) -> list[Document]:
    """Load uploaded files (checked against the limits); ids are the file names."""
    if len(files) > cfg.max_upload_files:
        raise SlmkitError(
            f"{len(files)} files is too many to index at once",
            hint=f"upload at most {cfg.max_upload_files} files",
        )
    total = sum(os.path.getsize(f) for f in files)
    if total > cfg.max_upload_mb * 1e6:
        raise SlmkitError(
            f"the files add up to {total / 1e6:.1f} MB, over the {cfg.max_upload_mb:g} MB limit",
            hint="upload fewer or smaller files",
        )
    docs: list[Document] = []
    for f in files:
        path = Path(f)
        # Gradio keeps the original name as the file's name inside a per-upload folder.
        docs.extend(
            replace(d, id=d.id.replace(path.as_posix(), path.name)) for d in load_path(path)
        )
    return docs


def build_demo(index: Index, model: ChatModel, config: DemoConfig | None = None) -> Any:
    """The demo as a ``gr.Blocks`` over ``index`` (the corpus) and ``model``."""
    import gradio as gr

    cfg = config or DemoConfig()
    ids = index.sources()
    pydoc = bool(ids) and all(i.startswith("pydoc:") for i in ids)
    corpus_label = "the Python language reference" if pydoc else str(index.path)

    def respond(
        question: str,
        history: list[dict[str, str]],
        session: Index | None,
        mode: AnswerMode | None = None,
    ) -> tuple[list[dict[str, str]], list[dict[str, str]], str, str]:
        question = (question or "").strip()
        history = list(history or [])
        panel = gr.skip()
        if not question:
            return history, history, panel, ""
        if len(question) > cfg.max_question_chars:
            reply = (
                f"Your question has {len(question)} characters; the limit is "
                f"{cfg.max_question_chars}. Please shorten it."
            )
            history += [{"role": "user", "content": question[:200] + "…"}]
        else:
            history += [{"role": "user", "content": question}]
            try:
                ans = answer(question, session or index, model, k=cfg.k, mode=mode or cfg.mode)
            except SlmkitError as exc:
                reply = f"Sorry, that failed: {exc.message}" + (
                    f" ({exc.hint})" if exc.hint else ""
                )
            else:
                reply = render_chat(ans)
                panel = render_sources(ans)
        history += [{"role": "assistant", "content": reply}]
        return history, history, panel, ""

    def index_uploads(files: list[str] | None, session: Index | None) -> tuple[Index | None, str]:
        if not files:
            return session, "Choose one or more files first."
        try:
            docs = _uploaded_documents(list(files), cfg)
            if not docs:
                return session, "Those files hold no text to index."
            built = Index.build(docs, embedder=index.embedder)
        except SlmkitError as exc:
            return session, f"Could not index the files: {exc.message}" + (
                f" ({exc.hint})" if exc.hint else ""
            )
        return built, _describe(built, f"your {len(files)} uploaded file(s)")

    def reset() -> tuple[None, str]:
        return None, _describe(index, corpus_label)

    with gr.Blocks(title="slmkit: cited answers", analytics_enabled=False) as demo:
        gr.Markdown(
            "## Ask the documents\n"
            f"A small model ({html.escape(model.name)}) answers from the retrieved passages. "
            "Each sentence cites a passage with a literal quote, and two things are checked "
            "apart: that the quote is **verbatim** in the source, and that it **supports** "
            "the sentence. Grounded answers copy whole sentences from the sources; free "
            "answers are in the model's words and may be flagged or withheld."
        )
        corpus = gr.Markdown(_describe(index, corpus_label), elem_id="corpus")
        session = gr.State(None, time_to_live=3600)
        history = gr.State([])
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(elem_id="chat", label="Answers", height=460)
                with gr.Row():
                    question = gr.Textbox(
                        elem_id="question",
                        placeholder="e.g. What does the assert statement do?",
                        show_label=False,
                        max_length=cfg.max_question_chars,
                        scale=5,
                    )
                    ask = gr.Button("Ask", elem_id="ask", variant="primary", scale=1)
                mode = gr.Radio(
                    ["grounded", "free"],
                    value=cfg.mode,
                    label="Answer mode",
                    info="grounded: copied sentences; free: the model's words, checked",
                    elem_id="mode",
                )
            with gr.Column(scale=2):
                sources = gr.HTML(_EMPTY_PANEL, elem_id="sources", label="Sources")
        with gr.Accordion("Index your own files (this session only)", open=False):
            upload = gr.File(
                file_count="multiple",
                file_types=sorted(SUPPORTED_SUFFIXES),
                elem_id="upload",
                label=f"Up to {cfg.max_upload_files} files, {cfg.max_upload_mb:g} MB in all",
            )
            with gr.Row():
                index_button = gr.Button("Index these files", elem_id="index-files")
                reset_button = gr.Button("Back to the default corpus", elem_id="reset")
        outputs = [chat, history, sources, question]
        ask.click(respond, [question, history, session, mode], outputs)
        question.submit(respond, [question, history, session, mode], outputs)
        index_button.click(index_uploads, [upload, session], [session, corpus])
        reset_button.click(reset, None, [session, corpus])
    return demo


def _css() -> str:
    return (resources.files("slmkit.apps") / "static" / "demo.css").read_text(encoding="utf-8")


def launch(
    config: DemoConfig | None = None,
    *,
    index: Index | None = None,
    model: ChatModel | None = None,
    block: bool = True,
    status: Status | None = None,
) -> Any:
    """Load the index and model, build the demo and serve it; returns the ``gr.Blocks``.

    ``index``/``model`` objects override the config's paths (tests pass small ones);
    ``block=False`` returns once the server is up (call ``.close()`` on the result).
    """
    from slmkit.models import load_model

    cfg = config or DemoConfig()
    say = status or (lambda _msg: None)
    if index is None:
        index = Index.load(cfg.index) if cfg.index else default_index(status=say)
    if model is None:
        say(f"loading model {cfg.model}")
        model = load_model(cfg.model)
    demo = build_demo(index, model, cfg)
    say(f"serving on http://{cfg.host}:{cfg.port or 7860} (or the next free port)")
    demo.queue(default_concurrency_limit=1)
    demo.launch(
        server_name=cfg.host,
        server_port=cfg.port,
        max_file_size=int(cfg.max_upload_mb * 1e6),
        css=_css(),
        share=False,
        show_error=True,
        prevent_thread_lock=not block,
        quiet=not block,
    )
    return demo
