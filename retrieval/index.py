"""The document index: dense (FAISS) and BM25 search over chunks, persisted as one folder.

``Index.build`` chunks and embeds documents and writes a folder; ``Index.load`` opens
one, refusing folders it cannot trust; ``search`` returns :class:`Passage` objects whose
offsets point into the stored source text. ``add`` and ``delete`` change the index
without re-embedding what is already there; each change is committed as a new
generation (see :mod:`.manifest`) so a crash mid-way leaves the previous state intact.

One process may write a folder at a time; readers in other processes keep the
generation they opened (its files are unlinked, not overwritten, when replaced).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np
import numpy.typing as npt

from .base import Passage
from .chunking import Chunk, ChunkingConfig, TokenSpans, chunk_document, word_spans
from .dense import DenseIndex, Kind, choose_kind
from .documents import Document, as_documents
from .embeddings import Embedder
from .errors import IndexCorruptError, RetrievalError
from .generation import Generation, open_generation, prepare_folder, write_generation
from .manifest import (
    DenseParams,
    EmbedderInfo,
    Manifest,
    generation_prefix,
    read_manifest,
    remove_stale_files,
    verify_files,
)
from .sparse import Bm25Index
from .store import ChunkStore, search_text

__all__ = ["RRF_K", "Index", "SearchMode"]

SearchMode = Literal["hybrid", "dense", "bm25"]
RRF_K = 60
"""Reciprocal-rank-fusion constant from Cormack et al. (2009); damps top-rank dominance."""
_COMPACT_ABOVE = 0.5  # rebuild an HNSW graph once tombstones outnumber live vectors


def _as_embedder(embedder: Embedder | str | os.PathLike[str] | None) -> Embedder:
    return embedder if isinstance(embedder, Embedder) else Embedder(embedder)


def _token_spans(config: ChunkingConfig, embedder: Embedder) -> TokenSpans:
    return embedder.token_spans if config.tokens == "embedder" else word_spans


def _chunked(
    docs: list[Document], config: ChunkingConfig, embedder: Embedder
) -> list[tuple[Document, list[Chunk]]]:
    spans = _token_spans(config, embedder)
    return [(doc, chunk_document(doc, config, token_spans=spans)) for doc in docs]


def _embed(
    pairs: list[tuple[Document, list[Chunk]]], embedder: Embedder, show_progress: bool | None
) -> npt.NDArray[np.float32]:
    texts = [search_text(c.title, c.section, c.text) for _, chunks in pairs for c in chunks]
    return embedder.encode(texts, show_progress=show_progress)


def _rrf(rankings: Sequence[list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
    """Reciprocal-rank fusion: each list adds ``1 / (RRF_K + rank)`` to an id's score."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]


def _dense(state: Generation, vector: npt.NDArray[np.float32], k: int) -> list[tuple[int, float]]:
    """Dense top-``k`` of live chunks; over-fetches past HNSW tombstones as needed."""
    fetch = k + min(state.tombstones, k)
    while True:
        scores, ids = state.dense.search(vector, fetch)
        hits = [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]
        if state.tombstones:
            live = state.store.chunks_by_id(i for i, _ in hits)
            hits = [hit for hit in hits if hit[0] in live]
        if len(hits) >= k or fetch >= state.dense.ntotal:
            return hits[:k]
        fetch = min(4 * fetch, state.dense.ntotal)


class Index:
    """A searchable, updatable index of documents, stored in one folder.

    Create one with :meth:`build` or :meth:`load`. It is a :class:`Retriever`.
    """

    def __init__(self, folder: Path, state: Generation, embedder: Embedder) -> None:
        """Internal: use :meth:`build` or :meth:`load`."""
        self.path = folder
        self.embedder = embedder
        self._state = state
        self._lock = threading.RLock()

    # --- construction -------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        source: Document | str | os.PathLike[str] | Iterable[Document | str | os.PathLike[str]],
        path: str | os.PathLike[str] | None = None,
        *,
        kind: Literal["auto", "flat", "hnsw", "ivf"] = "auto",
        embedder: Embedder | str | os.PathLike[str] | None = None,
        chunking: ChunkingConfig | None = None,
        dense: DenseParams | None = None,
        overwrite: bool = False,
        show_progress: bool | None = None,
    ) -> Index:
        """Chunk, embed and index ``source``, writing the index folder at ``path``.

        ``source`` is documents or paths (``str`` or ``Path``, files or folders, loaded
        by suffix), alone or in an iterable. A ``str`` is always a path: one that names
        nothing raises :class:`~slmkit.models.PathNotFoundError`; index text by wrapping
        it in a :class:`Document` (:func:`document_from_text`). ``kind="auto"`` picks the
        FAISS index from the number of chunks (:func:`choose_kind`). ``path=None`` builds
        in a temporary folder removed when the index is garbage-collected. An existing
        index at ``path`` is replaced (atomically) only with ``overwrite=True``.
        """
        if kind not in ("auto", "flat", "hnsw", "ivf"):  # else written, then unloadable
            raise RetrievalError(
                f"unknown index kind {kind!r}", hint="use 'auto', 'flat', 'hnsw' or 'ivf'"
            )
        emb = _as_embedder(embedder)
        config = chunking or ChunkingConfig()
        pairs = _chunked(as_documents(source), config, emb)
        vectors = _embed(pairs, emb, show_progress)
        chosen: Kind = choose_kind(len(vectors)) if kind == "auto" else kind
        if chosen == "ivf" and not len(vectors):
            raise RetrievalError(
                "an IVF index needs vectors to train on, and there are none",
                hint="use kind='auto' or 'flat' for an empty corpus",
            )
        params = (dense or DenseParams()).model_copy(update={"kind": chosen})

        temporary = path is None
        folder, generation = prepare_folder(
            tempfile.mkdtemp(prefix="slmkit-index-") if path is None else path, overwrite
        )
        store = ChunkStore.create(folder / f"{generation_prefix(generation)}.sqlite")
        try:
            stored = store.put(pairs)
            ids = np.fromiter((c.id for c in stored), dtype=np.int64, count=len(stored))
            dense_index = DenseIndex.build(
                vectors if len(vectors) else np.zeros((0, emb.dimension), np.float32),
                ids,
                params,
            )
            bm25 = Bm25Index.build([c.search_text for c in stored], ids)
            now = datetime.now(UTC).isoformat()
            state = write_generation(
                folder,
                generation,
                store=store,
                dense=dense_index,
                bm25=bm25,
                embedder=EmbedderInfo(name=emb.name, dimension=emb.dimension),
                chunking=config,
                created_at=now,
            )
        except BaseException:
            store.close()
            raise
        index = cls(folder, state, emb)
        if temporary:
            weakref.finalize(index, shutil.rmtree, folder, True)
        return index

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        embedder: Embedder | str | os.PathLike[str] | None = None,
        verify: bool = True,
    ) -> Index:
        """Open the index folder at ``path``.

        Without ``embedder`` the one named in the manifest is used; naming another is an
        error, since its vectors would not be comparable. ``verify`` checks every file's
        size and sha256 first (reads the whole index once). Anything wrong with the folder
        raises :class:`IndexCorruptError`.
        """
        if not isinstance(path, str | os.PathLike):
            raise RetrievalError(
                f"an index path is a str or Path, not {type(path).__name__}",
                hint="Index.load('runs/my-index')",
            )
        folder = Path(path).expanduser()  # a missing folder: IndexCorruptError, with a hint
        manifest = read_manifest(folder)
        recorded = manifest.embedder
        emb = Embedder(recorded.name) if embedder is None else _as_embedder(embedder)
        if embedder is not None and (emb.name, emb.dimension) != (
            recorded.name,
            recorded.dimension,
        ):
            raise IndexCorruptError(
                f"index at {folder} was built with embedder {recorded.name!r} "
                f"(dimension {recorded.dimension}), not {emb.name!r} (dimension {emb.dimension})",
                hint=f"load it with embedder={recorded.name!r} (or none), or rebuild it with "
                "the embedder you want",
            )
        if verify:
            verify_files(folder, manifest)
        return cls(folder, open_generation(folder, manifest), emb)

    # --- reading ------------------------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        """The current generation's manifest (kind, counts, embedder, files)."""
        return self._state.manifest

    @property
    def kind(self) -> Kind:
        """The FAISS index kind in use."""
        return self._state.manifest.dense.kind

    def __len__(self) -> int:
        """Number of chunks."""
        return self._state.manifest.chunks

    def sources(self) -> list[str]:
        """Ids of the indexed documents, sorted."""
        return self._state.store.source_ids()

    def document(self, source_id: str) -> Document:
        """The full stored document, whose text passage offsets point into."""
        doc = self._state.store.document(source_id)
        if doc is None:
            raise RetrievalError(
                f"no document {source_id!r} in the index at {self.path}",
                hint="see Index.sources() for the ids it holds",
            )
        return doc

    def search(self, query: str, k: int = 5, *, mode: SearchMode = "hybrid") -> list[Passage]:
        """The ``k`` best passages for ``query``, best first.

        ``mode="dense"`` ranks by cosine similarity, ``"bm25"`` by keyword score,
        ``"hybrid"`` (default) fuses both rankings by reciprocal rank; ``score`` is
        that mode's score.
        """
        if mode not in ("hybrid", "dense", "bm25"):
            raise RetrievalError(
                f"unknown search mode {mode!r}", hint="use 'hybrid', 'dense' or 'bm25'"
            )
        if not isinstance(query, str):
            raise RetrievalError(
                f"a query is a str, not {type(query).__name__}", hint="search('your question')"
            )
        if k <= 0 or not query.strip():
            return []
        vector = None if mode == "bm25" else self.embedder.encode([query], show_progress=False)
        with self._lock:
            state = self._state
            if vector is None:
                ranked = state.bm25.search(query, k)
            elif mode == "dense":
                ranked = _dense(state, vector, k)
            else:
                depth = max(4 * k, 20)
                ranked = _rrf([_dense(state, vector, depth), state.bm25.search(query, depth)], k)
            rows = state.store.chunks_by_id(i for i, _ in ranked)
        return [
            Passage(
                row.source_id,
                row.chunk_id,
                row.title,
                row.text,
                row.start,
                row.end,
                score,
                row.section,
            )
            for i, score in ranked
            if (row := rows.get(i)) is not None
        ]

    # --- changes ------------------------------------------------------------------------

    def add(
        self,
        source: Document | str | os.PathLike[str] | Iterable[Document | str | os.PathLike[str]],
        *,
        show_progress: bool | None = None,
    ) -> int:
        """Index more documents; returns the number of chunks added.

        A document whose id is already indexed replaces the old version. Only the new
        documents are embedded; the change is committed atomically as a new generation.
        """
        manifest = self._state.manifest
        pairs = _chunked(as_documents(source), manifest.chunking, self.embedder)
        vectors = _embed(pairs, self.embedder, show_progress)
        with self._lock:
            replaced = self._state.store.has(doc.id for doc, _ in pairs)

            def change(store: ChunkStore, dense: DenseIndex) -> int:
                dense.remove(store.remove(replaced))
                stored = store.put(pairs)
                dense.add(vectors, np.fromiter((c.id for c in stored), np.int64, len(stored)))
                return len(stored)

            return self._change(change)

    def delete(self, source_id: str | Iterable[str]) -> int:
        """Remove documents by id; returns the number of chunks removed (0: none known).

        Flat and IVF indexes drop the vectors; HNSW keeps them as tombstones that
        searches skip, and is rebuilt from its live vectors once tombstones outnumber them.
        """
        wanted = [source_id] if isinstance(source_id, str) else list(source_id)
        with self._lock:
            present = self._state.store.has(wanted)
            if not present:
                return 0

            def change(store: ChunkStore, dense: DenseIndex) -> int:
                removed = store.remove(present)
                dense.remove(removed)
                return len(removed)

            return self._change(change)

    def _change(self, change: Callable[[ChunkStore, DenseIndex], int]) -> int:
        """Apply ``change(store, dense)`` to a copy of the store, then commit a generation.

        On any failure the in-memory state is reloaded from the folder (the last committed
        generation), since the FAISS index may have been changed in place.
        """
        old = self._state
        generation = old.manifest.generation + 1
        remove_stale_files(self.path, old.manifest)
        store = old.store.copy_to(self.path / f"{generation_prefix(generation)}.sqlite")
        try:
            result: int = change(store, old.dense)
            dense = old.dense
            live = store.counts()[1]
            if dense.params.kind == "hnsw" and dense.ntotal - live > _COMPACT_ABOVE * dense.ntotal:
                dense = dense.compact({c.id for c in store.iter_chunks()})
            chunks = list(store.iter_chunks())
            bm25 = Bm25Index.build([c.search_text for c in chunks], [c.id for c in chunks])
            self._state = write_generation(
                self.path,
                generation,
                store=store,
                dense=dense,
                bm25=bm25,
                embedder=old.manifest.embedder,
                chunking=old.manifest.chunking,
                created_at=old.manifest.created_at,
            )
        except BaseException:
            store.close()
            self._state = open_generation(self.path, read_manifest(self.path))
            old.store.close()
            raise
        old.store.close()
        return result

    # --- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Release the chunk store's file handle."""
        self._state.store.close()

    def __enter__(self) -> Index:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self._state.manifest
        return (
            f"Index({str(self.path)!r}, kind={m.dense.kind!r}, documents={m.documents}, "
            f"chunks={m.chunks}, embedder={m.embedder.name!r})"
        )
