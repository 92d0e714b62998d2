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
    Document,
    Embedder,
    Index,
    answer,
    load_path,
)

from .demo_render import EMPTY_PANEL, render_chat, render_sources

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


# --- the app ------------------------------------------------------------------------------


def _describe(index: Index, label: str) -> str:
    m = index.manifest
    return f"Searching **{label}**: {m.documents} documents, {m.chunks} passages."


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
                sources = gr.HTML(EMPTY_PANEL, elem_id="sources", label="Sources")
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
