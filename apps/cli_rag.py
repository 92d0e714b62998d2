"""``agentctl index``, ``ask`` and ``demo``: build an index, ask it, serve the demo.

Each command's flags are the fields of a pydantic config (:class:`IndexConfig`,
:class:`AskConfig`, :class:`slmkit.apps.demo.DemoConfig`); ``--config file.yaml``
supplies any of them and flags given on the command line win. Answers go to stdout
(``--json`` for machines) and status lines to stderr, so ``agentctl ask ... --json | jq``
works.

Every printed quote carries two verdicts, in words: **verbatim** only when
:func:`~slmkit.retrieval.verify_quote` found it in the source document (never because the
grammar was supposed to guarantee it), and **supports** when the support score says the
quote backs its sentence. ``ask`` and ``demo`` answer in grounded mode unless ``--mode free``
(the demo's page can switch per question).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import BaseModel, ConfigDict, Field
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from slmkit.apps.flags import ConfigOpt, load_config
from slmkit.models import DEFAULT_SPEC, SlmkitError, existing_path
from slmkit.retrieval import (
    MANIFEST_NAME,
    SUPPORTED_SUFFIXES,
    ChunkingConfig,
    Citation,
    CitedAnswer,
    Document,
    Index,
    RetrievalError,
    load_path,
)

__all__ = ["AskConfig", "IndexConfig", "print_answer", "register"]

console = Console()
err_console = Console(stderr=True)

ModeOpt = Annotated[
    str | None,
    typer.Option(help="grounded (copied passage sentences) | free (the model's words, checked)"),
]


class IndexConfig(BaseModel):
    """``agentctl index``: what to index and how."""

    model_config = ConfigDict(extra="forbid")

    paths: list[Path] = Field(min_length=1, description="files or folders to index")
    out: Path = Field(description="index folder to write")
    kind: Literal["auto", "flat", "hnsw", "ivf"] = "auto"
    chunk_tokens: int = Field(default=128, ge=8, description="chunk size in words")
    chunk_overlap: int = Field(default=24, ge=0, description="words shared by neighbours")
    embedder: str | None = Field(default=None, description="sentence-transformers model")
    overwrite: bool = False
    add: bool = Field(default=False, description="add to the index at --out")


class AskConfig(BaseModel):
    """``agentctl ask``: which index and model, and how to decode."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1)
    index: Path
    model: str = DEFAULT_SPEC
    k: int = Field(default=4, ge=1, le=20)
    mode: Literal["grounded", "free"] = "grounded"
    max_sentences: int = Field(default=3, ge=1, le=6)
    max_tokens: int = Field(default=256, ge=16)
    temperature: float = Field(default=0.0, ge=0.0)
    seed: int | None = None
    json_output: bool = False


# --- index --------------------------------------------------------------------------------


def _expand(paths: Iterable[Path]) -> tuple[list[Path], list[Path]]:
    """Files to load (folders walked, hidden entries skipped) and unsupported ones skipped."""
    files: list[Path] = []
    skipped: list[Path] = []
    for given in paths:
        path = existing_path(given, what="file or folder to index")
        if path.is_file():
            files.append(path)
            continue
        for f in sorted(path.rglob("*")):
            if not f.is_file() or any(p.startswith(".") for p in f.relative_to(path).parts):
                continue
            (files if f.suffix.lower() in SUPPORTED_SUFFIXES else skipped).append(f)
    return files, skipped


def _load_documents(files: list[Path]) -> tuple[list[Document], list[str]]:
    """Load ``files`` with a progress bar; a file that fails is reported, not fatal."""
    docs: list[Document] = []
    failures: list[str] = []
    columns = (
        TextColumn("[bold]loading"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[name]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task("load", total=len(files), name="")
        for f in files:
            progress.update(task, name=f.name)
            try:
                docs.extend(load_path(f))
            except SlmkitError as exc:
                failures.append(f"{f}: {exc.message}")
            progress.advance(task)
    return docs, failures


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def _summary(index: Index, docs: list[Document], skipped: int, failed: int, took: float) -> Table:
    m = index.manifest
    formats: dict[str, int] = {}
    for doc in docs:
        name = str(doc.meta.get("format", "?"))
        formats[name] = formats.get(name, 0) + 1
    table = Table(title=f"index {index.path}", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("documents in index", str(m.documents))
    table.add_row("chunks", str(m.chunks))
    table.add_row("loaded now", ", ".join(f"{n} {f}" for f, n in sorted(formats.items())) or "-")
    table.add_row("skipped files", f"{skipped} unsupported, {failed} unreadable")
    table.add_row("FAISS index", m.dense.kind)
    table.add_row("embedder", f"{m.embedder.name} ({m.embedder.dimension} dims)")
    table.add_row("size on disk", f"{_folder_bytes(index.path) / 1e6:.2f} MB")
    table.add_row("time", f"{took:.1f} s")
    return table


def index_command(
    ctx: typer.Context,
    paths: Annotated[list[Path] | None, typer.Argument(help="files or folders to index")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="index folder")] = None,
    kind: Annotated[str | None, typer.Option(help="auto | flat | hnsw | ivf")] = None,
    chunk_tokens: Annotated[int | None, typer.Option(help="chunk size in words")] = None,
    chunk_overlap: Annotated[int | None, typer.Option(help="overlap in words")] = None,
    embedder: Annotated[str | None, typer.Option(help="sentence-transformers model")] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite", help="replace")] = None,
    add: Annotated[bool | None, typer.Option("--add", help="add to an existing index")] = None,
    config: ConfigOpt = None,
) -> None:
    """Index files and folders (.txt .md .html .pdf .jsonl ...) into an index folder."""
    cfg = load_config(
        IndexConfig,
        ctx,
        config,
        {
            "paths": paths or None,
            "out": out,
            "kind": kind,
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": chunk_overlap,
            "embedder": embedder,
            "overwrite": overwrite,
            "add": add,
        },
        command="index",
    )
    if cfg.add and cfg.overwrite:
        raise SlmkitError("--add and --overwrite contradict each other", hint="pick one")
    exists = (cfg.out / MANIFEST_NAME).exists()
    if exists and not (cfg.add or cfg.overwrite):
        raise RetrievalError(
            f"an index already exists at {cfg.out}",
            hint="pass --add to add these files to it, or --overwrite to replace it",
        )
    if cfg.add and not exists:
        raise RetrievalError(f"no index at {cfg.out} to add to", hint="leave out --add")
    started = time.perf_counter()
    files, skipped = _expand(cfg.paths)
    docs, failures = _load_documents(files)
    for failure in failures:
        err_console.print(f"[yellow]skipped:[/] {escape(failure)}")
    if not docs:
        raise RetrievalError(
            "found no documents to index",
            hint="supported file types: " + ", ".join(sorted(SUPPORTED_SUFFIXES)),
        )
    err_console.print(f"[dim]embedding {len(docs)} documents...[/]")
    if cfg.add:
        index = Index.load(cfg.out, embedder=cfg.embedder)
        index.add(docs, show_progress=True)
    else:
        index = Index.build(
            docs,
            path=cfg.out,
            kind=cfg.kind,
            embedder=cfg.embedder,
            chunking=ChunkingConfig(max_tokens=cfg.chunk_tokens, overlap=cfg.chunk_overlap),
            overwrite=cfg.overwrite,
            show_progress=True,
        )
    with index:
        console.print(
            _summary(index, docs, len(skipped), len(failures), time.perf_counter() - started)
        )


# --- ask ----------------------------------------------------------------------------------


def _verdict(c: Citation) -> str:
    """Two verdicts, two facts: verbatim in the source, and support of the sentence."""
    if c.verified:
        verbatim = f"[green]verbatim[/] ({c.method})"
    elif c.method == "fuzzy":
        verbatim = f"[red]NOT verbatim[/] (closest source text {c.score:.0%} similar)"
    else:
        verbatim = "[red]NOT verbatim[/] (not found in the source)"
    if c.supports is None:
        return verbatim
    if c.supports:
        return f"{verbatim}, [green]supports[/] its sentence ({c.support:.2f})"
    return f"{verbatim}, [red]does NOT support[/] its sentence ({c.support or 0:.2f})"


def print_answer(ans: CitedAnswer, out: Console | None = None) -> None:
    """The answer, then each cited source with its quotes and their verdicts."""
    out = out or console
    out.print(escape(ans.text), highlight=False)
    if ans.refused and ans.meta.get("refusal"):
        out.print(f"[yellow](refused: {escape(str(ans.meta['refusal']))})[/]")
    held = ans.meta.get("withheld")
    if held:
        out.print(f"[yellow]withheld draft:[/] {escape(held['text'])}", highlight=False)
        for c in map(lambda d: Citation(**d), held["citations"]):
            quote = escape(" ".join(c.quote.split()))
            out.print(f'    [{c.marker}] "{quote}"  {_verdict(c)}', highlight=False)
    for i in ans.unsupported_sentences:
        out.print(f"[yellow](not supported by its quote: {escape(repr(ans.sentences[i]))})[/]")
    if not ans.complete:
        out.print("[yellow](the answer was cut off by the token budget)[/]")
    if ans.citations:
        out.print("\n[bold]Sources[/]")
    for number, passage in ans.cited_passages.items():
        where = f"{passage.source_id}" + (f", {passage.section}" if passage.section else "")
        out.print(f"[bold][{number}][/] {escape(passage.title)} [dim]({escape(where)})[/]")
        for c in ans.citations_for(number):
            span = f"chars {c.start}-{c.end}" if c.start is not None else "no span"
            quote = " ".join(c.quote.split())
            out.print(f'    "{escape(quote)}"  {_verdict(c)} [dim]{span}[/]', highlight=False)
    for c in ans.citations:
        if c.checked_against == "nothing":
            out.print(
                f'[bold][{c.marker}][/] [red]names no retrieved passage[/]: "{escape(c.quote)}"'
            )
    if ans.uncited_passages:
        out.print("\n[bold]Retrieved, not cited[/]")
        for number, passage in ans.uncited_passages.items():
            out.print(f"[dim][{number}] {escape(passage.title)} ({escape(passage.source_id)})[/]")


def ask_command(
    ctx: typer.Context,
    question: Annotated[str | None, typer.Argument(help="the question")] = None,
    index: Annotated[Path | None, typer.Option("--index", "-i", help="index folder")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="model spec")] = None,
    k: Annotated[int | None, typer.Option("-k", help="passages to retrieve")] = None,
    mode: ModeOpt = None,
    max_sentences: Annotated[int | None, typer.Option(help="sentences at most")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="token budget")] = None,
    temperature: Annotated[float | None, typer.Option(help="sampling temperature")] = None,
    seed: Annotated[int | None, typer.Option(help="sampling seed")] = None,
    json_output: Annotated[bool | None, typer.Option("--json", help="print JSON")] = None,
    config: ConfigOpt = None,
) -> None:
    """Answer a question from an index, citing numbered sources with checked quotes."""
    from slmkit.models import load_model
    from slmkit.retrieval import answer

    cfg = load_config(
        AskConfig,
        ctx,
        config,
        {
            "question": question,
            "index": index,
            "model": model,
            "k": k,
            "mode": mode,
            "max_sentences": max_sentences,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "seed": seed,
            "json_output": json_output,
        },
        command="ask",
    )
    with Index.load(cfg.index) as idx:
        chat_model = load_model(cfg.model)
        ans = answer(
            cfg.question,
            idx,
            chat_model,
            k=cfg.k,
            mode=cfg.mode,
            max_sentences=cfg.max_sentences,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            seed=cfg.seed,
        )
    if cfg.json_output:
        console.print_json(json.dumps(ans.to_dict()))
        return
    print_answer(ans)
    verbatim = sum(c.verified for c in ans.citations)
    supported = sum(ans.sentence_supported)
    err_console.print(
        f"[dim]{ans.model}: {ans.mode} answer, {verbatim}/{len(ans.citations)} quotes verbatim, "
        f"{supported}/{len(ans.sentence_supported)} sentences supported, "
        f"{'constrained' if ans.constrained else 'unconstrained'} decoding, "
        f"{ans.latency_s:.1f}s[/]"
    )


# --- demo ---------------------------------------------------------------------------------


def demo_command(
    ctx: typer.Context,
    index: Annotated[Path | None, typer.Option("--index", "-i", help="index folder")] = None,
    model: Annotated[str | None, typer.Option("--model", "-m", help="model spec")] = None,
    host: Annotated[str | None, typer.Option(help="address to bind")] = None,
    port: Annotated[int | None, typer.Option(help="port (default: first free from 7860)")] = None,
    k: Annotated[int | None, typer.Option("-k", help="passages per answer")] = None,
    mode: ModeOpt = None,
    max_upload_mb: Annotated[float | None, typer.Option(help="upload size limit, MB")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the Gradio demo: cited answers over an index (default: the Python reference)."""
    from slmkit.apps.demo import DemoConfig, launch

    cfg = load_config(
        DemoConfig,
        ctx,
        config,
        {
            "index": index,
            "model": model,
            "host": host,
            "port": port,
            "k": k,
            "mode": mode,
            "max_upload_mb": max_upload_mb,
        },
        command="demo",
    )
    if cfg.host not in ("127.0.0.1", "localhost", "::1"):
        err_console.print(
            f"[yellow]warning:[/] binding {cfg.host} exposes the demo (and uploads) to the network"
        )
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    launch(cfg, status=lambda msg: err_console.print(f"[dim]{escape(msg)}[/]"))


def register(app: typer.Typer) -> None:
    """Add the ``index``, ``ask`` and ``demo`` commands to ``app``."""
    app.command("index")(index_command)
    app.command("ask")(ask_command)
    app.command("demo")(demo_command)
