"""The SQLite document and chunk store of an index generation.

It holds each document's full text (so any citation can be re-checked against the exact
source) and each chunk's span. A chunk's integer row id is also its vector id in FAISS
and its row in BM25. Ids are never reused, not even after a delete: an HNSW graph cannot
drop vectors, so a deleted chunk's vector stays in it as a *tombstone*, recognisable
because its id no longer has a row here. Reusing the id would make that dead vector
answer for a new, unrelated chunk.

A generation's file is written once and then only read (opened ``immutable``), which is
what lets the manifest checksum it; a change copies it to the next generation first.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .chunking import Chunk
from .documents import Document, Section

__all__ = ["ChunkStore", "StoredChunk", "search_text"]

_SCHEMA = """
CREATE TABLE documents (
    source_id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    text TEXT NOT NULL,
    meta TEXT NOT NULL,
    sections TEXT NOT NULL
);
CREATE TABLE chunks (
    id INTEGER PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES documents(source_id),
    ordinal INTEGER NOT NULL,
    title TEXT NOT NULL,
    section TEXT NOT NULL,
    text TEXT NOT NULL,
    start INTEGER NOT NULL,
    "end" INTEGER NOT NULL
);
CREATE INDEX chunks_by_source ON chunks(source_id);
CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO counters VALUES ('next_id', 0);
"""


@dataclass(frozen=True, slots=True)
class StoredChunk:
    """A chunk as stored: its vector id plus what a passage needs."""

    id: int
    source_id: str
    ordinal: int
    title: str
    section: str
    text: str
    start: int
    end: int

    @property
    def chunk_id(self) -> str:
        """Same readable id as :attr:`Chunk.chunk_id`."""
        return f"{self.source_id}#{self.ordinal}"

    @property
    def search_text(self) -> str:
        """What is embedded and BM25-indexed (see :func:`search_text`)."""
        return search_text(self.title, self.section, self.text)


def search_text(title: str, section: str, text: str) -> str:
    """The text that is embedded and BM25-indexed for a chunk.

    Title and section path are prepended because a chunk deep in a document often never
    names its subject ("It was founded in 1850") while a query does.
    """
    head = " > ".join(part for part in (title, section) if part)
    return f"{head}\n{text}" if head else text


_CHUNK_COLUMNS = 'id, source_id, ordinal, title, section, text, start, "end"'


class ChunkStore:
    """One generation's SQLite file, opened read-only or for a single batch of writes."""

    def __init__(self, path: Path, *, writable: bool = False) -> None:
        self.path = path
        uri = f"file:{path}?mode=rw" if writable else f"file:{path}?mode=ro&immutable=1"
        # check_same_thread=False: the demo app searches from worker threads; the lock
        # below serializes use of the one connection.
        self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        self._lock = threading.Lock()

    @classmethod
    def create(cls, path: Path) -> ChunkStore:
        """A new, empty store file (writable)."""
        with sqlite3.connect(path) as db:
            db.executescript(_SCHEMA)
        db.close()
        return cls(path, writable=True)

    def copy_to(self, path: Path) -> ChunkStore:
        """Copy this store into a new file (the next generation) and open that writable."""
        path.unlink(missing_ok=True)
        target = sqlite3.connect(path)
        try:
            with self._lock:
                self._db.backup(target)
        finally:
            target.close()
        return ChunkStore(path, writable=True)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._db.close()

    # --- writes (one transaction per call) ----------------------------------------------

    def put(self, docs: Sequence[tuple[Document, Sequence[Chunk]]]) -> list[StoredChunk]:
        """Insert documents and their chunks; returns the chunks with their new ids."""
        stored: list[StoredChunk] = []
        with self._lock, self._db:
            (next_id,) = self._db.execute(
                "SELECT value FROM counters WHERE name = 'next_id'"
            ).fetchone()
            for doc, chunks in docs:
                sections = [[s.start, s.end, s.heading] for s in doc.sections]
                self._db.execute(
                    "INSERT INTO documents VALUES (?, ?, ?, ?, ?)",
                    (doc.id, doc.title, doc.text, json.dumps(doc.meta), json.dumps(sections)),
                )
                for c in chunks:
                    row = StoredChunk(
                        next_id, c.source_id, c.ordinal, c.title, c.section, c.text, c.start, c.end
                    )
                    self._db.execute(
                        f"INSERT INTO chunks ({_CHUNK_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            row.id,
                            row.source_id,
                            row.ordinal,
                            row.title,
                            row.section,
                            row.text,
                            row.start,
                            row.end,
                        ),
                    )
                    stored.append(row)
                    next_id += 1
            self._db.execute("UPDATE counters SET value = ? WHERE name = 'next_id'", (next_id,))
        return stored

    def remove(self, source_ids: Iterable[str]) -> list[int]:
        """Delete documents and their chunks; returns the removed chunk ids."""
        removed: list[int] = []
        with self._lock, self._db:
            for sid in source_ids:
                rows = self._db.execute("SELECT id FROM chunks WHERE source_id = ?", (sid,))
                removed.extend(r[0] for r in rows)
                self._db.execute("DELETE FROM chunks WHERE source_id = ?", (sid,))
                self._db.execute("DELETE FROM documents WHERE source_id = ?", (sid,))
        return removed

    # --- reads --------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """``(documents, chunks)``."""
        with self._lock:
            (docs,) = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()
            (chunks,) = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()
        return int(docs), int(chunks)

    def source_ids(self) -> list[str]:
        """All document ids, sorted."""
        with self._lock:
            rows = self._db.execute("SELECT source_id FROM documents ORDER BY source_id")
            return [r[0] for r in rows]

    def has(self, source_ids: Iterable[str]) -> list[str]:
        """The subset of ``source_ids`` that is stored."""
        with self._lock:
            return [
                sid
                for sid in source_ids
                if self._db.execute(
                    "SELECT 1 FROM documents WHERE source_id = ?", (sid,)
                ).fetchone()
            ]

    def document(self, source_id: str) -> Document | None:
        """The full document, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT source_id, title, text, meta, sections FROM documents WHERE source_id = ?",
                (source_id,),
            ).fetchone()
        if row is None:
            return None
        sections = tuple(Section(a, b, h) for a, b, h in json.loads(row[4]))
        return Document(row[0], row[1], row[2], json.loads(row[3]), sections)

    def chunks_by_id(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        """The stored chunks among ``ids`` (absent ids are deleted chunks: tombstones)."""
        wanted = list(dict.fromkeys(int(i) for i in ids))
        found: dict[int, StoredChunk] = {}
        with self._lock:
            for lo in range(0, len(wanted), 500):
                part = wanted[lo : lo + 500]
                rows = self._db.execute(
                    f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE id IN "
                    f"({','.join('?' * len(part))})",
                    part,
                )
                found.update((r[0], StoredChunk(*r)) for r in rows)
        return found

    def iter_chunks(self) -> Iterator[StoredChunk]:
        """All chunks in id order (for rebuilding BM25)."""
        with self._lock:
            rows = self._db.execute(f"SELECT {_CHUNK_COLUMNS} FROM chunks ORDER BY id").fetchall()
        return (StoredChunk(*r) for r in rows)
