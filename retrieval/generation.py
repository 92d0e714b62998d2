"""One generation of an index folder: prepared, written and committed, opened and checked.

An index folder holds numbered generations (``g000001.faiss``, ``g000001.sqlite``,
``g000001.bm25/``) and one manifest naming the live one (see :mod:`.manifest`). A change
writes the next generation's files beside the old ones, then commits its manifest in one
rename; opening a generation checks every file against the manifest before use.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .chunking import ChunkingConfig
from .dense import DenseIndex
from .errors import IndexCorruptError, RetrievalError
from .manifest import (
    MANIFEST_NAME,
    EmbedderInfo,
    Manifest,
    commit_manifest,
    file_entry,
    generation_prefix,
    rebuild_hint,
    remove_stale_files,
)
from .sparse import Bm25Index
from .store import ChunkStore

__all__ = ["Generation", "open_generation", "prepare_folder", "write_generation"]


@dataclass
class Generation:
    """One generation, open in memory."""

    manifest: Manifest
    dense: DenseIndex
    bm25: Bm25Index
    store: ChunkStore

    @property
    def tombstones(self) -> int:
        return self.dense.ntotal - self.manifest.chunks


def _max_generation(folder: Path) -> int:
    """Highest generation number among files in ``folder`` (0 if none)."""
    gens = [
        int(p.name[1:7])
        for p in folder.iterdir()
        if p.name.startswith("g") and p.name[1:7].isdigit()
    ]
    return max(gens, default=0)


def prepare_folder(path: str | os.PathLike[str], overwrite: bool) -> tuple[Path, int]:
    """The folder to build in and the generation to write there."""
    folder = Path(path)
    if not folder.exists():
        folder.mkdir(parents=True)
        return folder, 1
    if not folder.is_dir():
        raise RetrievalError(f"{folder} exists and is not a folder", hint="choose another path")
    if (folder / MANIFEST_NAME).exists():
        if not overwrite:
            raise RetrievalError(
                f"an index already exists at {folder}",
                hint="pass overwrite=True to replace it, or Index.load(path).add(...) to extend it",
            )
        return folder, _max_generation(folder) + 1
    strangers = [
        p.name for p in folder.iterdir() if not (p.name.startswith("g") and p.name[1:7].isdigit())
    ]
    if strangers:
        raise RetrievalError(
            f"{folder} is not empty and holds no index (found {strangers[0]!r})",
            hint="build into a new or empty folder",
        )
    return folder, _max_generation(folder) + 1


def open_generation(folder: Path, manifest: Manifest) -> Generation:
    """Open the files of ``manifest``'s generation, checking they agree with it."""
    try:
        dense = DenseIndex.load(folder / manifest.dense_file, manifest.dense)
    except RuntimeError as exc:
        raise IndexCorruptError(
            f"cannot read FAISS file {folder / manifest.dense_file}: {exc}",
            hint=rebuild_hint(folder),
        ) from exc
    try:
        store = ChunkStore(folder / manifest.store_file)
        counts = store.counts()
    except sqlite3.Error as exc:
        raise IndexCorruptError(
            f"cannot read chunk store {folder / manifest.store_file}: {exc}",
            hint=rebuild_hint(folder),
        ) from exc
    try:
        bm25 = Bm25Index.load(folder / manifest.bm25_dir)
    except (OSError, ValueError, KeyError) as exc:
        store.close()
        raise IndexCorruptError(
            f"cannot read BM25 data in {folder / manifest.bm25_dir}: {exc}",
            hint=rebuild_hint(folder),
        ) from exc
    found = (dense.dimension, counts, len(bm25.ids))
    expected = (manifest.embedder.dimension, (manifest.documents, manifest.chunks), manifest.chunks)
    if found != expected or dense.ntotal != manifest.vectors:
        store.close()
        raise IndexCorruptError(
            f"index files in {folder} disagree with the manifest "
            f"(dimension, (documents, chunks), bm25 rows) = {found}, expected {expected}",
            hint=rebuild_hint(folder),
        )
    return Generation(manifest, dense, bm25, store)


def write_generation(
    folder: Path,
    generation: int,
    *,
    store: ChunkStore,
    dense: DenseIndex,
    bm25: Bm25Index,
    embedder: EmbedderInfo,
    chunking: ChunkingConfig,
    created_at: str,
) -> Generation:
    """Write one generation's files next to ``store``'s, then commit its manifest."""
    prefix = generation_prefix(generation)
    dense_file, bm25_dir = f"{prefix}.faiss", f"{prefix}.bm25"
    dense.save(folder / dense_file)
    bm25_files = bm25.save(folder / bm25_dir)
    documents, chunks = store.counts()
    store.close()
    names = [dense_file, store.path.name, *(f"{bm25_dir}/{p.name}" for p in bm25_files)]
    manifest = Manifest(
        generation=generation,
        embedder=embedder,
        dense=dense.params,
        chunking=chunking,
        documents=documents,
        chunks=chunks,
        vectors=dense.ntotal,
        dense_file=dense_file,
        store_file=store.path.name,
        bm25_dir=bm25_dir,
        files={name: file_entry(folder / name) for name in names},
        created_at=created_at,
    )
    commit_manifest(folder, manifest)
    remove_stale_files(folder, manifest)
    return Generation(manifest, dense, bm25, ChunkStore(store.path))
