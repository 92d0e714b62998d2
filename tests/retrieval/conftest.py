"""Shared fixtures for the retrieval tests: the real embedder (loaded once), a small
corpus of distinct topics, and a writer of small real PDF files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the embedder is packaged; never ask a hub

from slmkit.retrieval import Document, Embedder, document_from_text

TOPICS = {
    "eiffel": (
        "Eiffel Tower",
        "The Eiffel Tower is a wrought-iron lattice tower in Paris. "
        "It was completed in 1889 for the World's Fair and is 330 metres tall.",
    ),
    "python": (
        "Python",
        "Python is a programming language created by Guido van Rossum. "
        "Its first release was in 1991 and it emphasises code readability.",
    ),
    "faiss": (
        "FAISS",
        "FAISS is a library for efficient similarity search and clustering "
        "of dense vectors, written in C++ with Python wrappers.",
    ),
    "bees": (
        "Honey bee",
        "Honey bees live in colonies with a single queen. Worker bees "
        "collect nectar and pollen and communicate with a waggle dance.",
    ),
    "everest": (
        "Mount Everest",
        "Mount Everest is Earth's highest mountain above sea level, "
        "located in the Himalayas on the border of Nepal and China.",
    ),
    "jazz": (
        "Jazz",
        "Jazz is a music genre that originated in the African-American "
        "communities of New Orleans in the late 19th and early 20th centuries.",
    ),
    "photosynthesis": (
        "Photosynthesis",
        "Photosynthesis is the process by which green "
        "plants use sunlight to turn carbon dioxide and water into sugar.",
    ),
    "chess": (
        "Chess",
        "Chess is a board game for two players played on a checkered board "
        "with 64 squares; each player begins with sixteen pieces.",
    ),
    "volcano": (
        "Volcano",
        "A volcano is a rupture in the crust of a planet that lets hot "
        "lava, volcanic ash and gases escape from a magma chamber.",
    ),
    "coffee": (
        "Coffee",
        "Coffee is a brewed drink prepared from roasted coffee beans, the "
        "seeds of berries from the Coffea plant, native to Ethiopia.",
    ),
    "moon": (
        "Moon",
        "The Moon is Earth's only natural satellite. Apollo 11 landed the "
        "first humans on it in July 1969.",
    ),
    "sqlite": (
        "SQLite",
        "SQLite is a small, fast, self-contained SQL database engine that "
        "stores a whole database in a single file.",
    ),
}


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The packaged all-MiniLM-L6-v2, loaded once for the whole session."""
    emb = Embedder()
    emb.encode(["warm up"], show_progress=False)
    return emb


@pytest.fixture()
def corpus() -> list[Document]:
    return [document_from_text(text, id=key, title=title) for key, (title, text) in TOPICS.items()]


def _pdf_bytes(pages: list[list[str]]) -> bytes:
    """A minimal valid PDF: Helvetica text, one line per string (Latin-1 only)."""
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(len(pages)))
    objs = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    for i, lines in enumerate(pages):
        ops = ["BT", "/F1 11 Tf", "14 TL", "72 720 Td"]
        for line in lines:
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            ops.append(f"({escaped}) Tj T*")
        stream = "\n".join([*ops, "ET"]).encode("latin-1")
        objs.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
            f"<< /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>".encode()
        )
        objs.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for num, body in enumerate(objs, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    out += b"".join(b"%010d 00000 n \n" % off for off in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


@pytest.fixture()
def write_pdf() -> Callable[[Path, list[list[str]]], Path]:
    """``write_pdf(path, pages)`` writes a real PDF whose pages hold the given lines."""

    def write(path: Path, pages: list[list[str]]) -> Path:
        path.write_bytes(_pdf_bytes(pages))
        return path

    return write
