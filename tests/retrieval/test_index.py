"""Index: build/search/save/load/add/delete with the real embedder and real FAISS, refusal
of corrupt or mismatched folders, and consistency after a crash in the middle of a write."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slmkit.models import PathNotFoundError
from slmkit.retrieval import (
    FORMAT_VERSION,
    Document,
    Embedder,
    Index,
    IndexCorruptError,
    Passage,
    RetrievalError,
    Retriever,
    SearchMode,
    choose_kind,
    document_from_text,
)
from slmkit.retrieval import generation as generation_module
from slmkit.retrieval.dense import DenseIndex
from slmkit.retrieval.embeddings import default_model_path
from slmkit.retrieval.sparse import Bm25Index
from slmkit.retrieval.store import ChunkStore

MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "bm25")
NEWCOMER = document_from_text(
    "The axolotl is a salamander that keeps its gills as an adult and can regrow limbs.",
    id="axolotl",
    title="Axolotl",
)


def assert_consistent(index: Index, passages: list[Passage]) -> None:
    """Every passage is an exact slice of its stored source document."""
    for p in passages:
        doc = index.document(p.source_id)
        assert doc.text[p.start : p.end] == p.text
        assert p.title == doc.title and p.chunk_id.startswith(p.source_id + "#")


def top_sources(index: Index, query: str, k: int = 3) -> dict[str, list[str]]:
    results = {mode: index.search(query, k, mode=mode) for mode in MODES}
    for passages in results.values():
        assert_consistent(index, passages)
    return {mode: [p.source_id for p in ps] for mode, ps in results.items()}


def data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_search_finds_the_right_document_in_every_mode(
    tmp_path: Path, embedder: Embedder, corpus: list[Document]
) -> None:
    index = Index.build(corpus, tmp_path / "ix", embedder=embedder)
    assert isinstance(index, Retriever)
    assert index.kind == "flat" and len(index) == len(corpus)
    for query, expected in [
        ("who created the Python language?", "python"),
        ("tallest mountain in the Himalayas", "everest"),
        ("Apollo 11 landing", "moon"),
    ]:
        for mode, sources in top_sources(index, query).items():
            assert sources[0] == expected, (query, mode, sources)
    dense = index.search("how do bees talk to each other", 3, mode="dense")
    assert dense[0].source_id == "bees" and 0.0 < dense[0].score <= 1.0
    assert dense[0].score >= dense[1].score
    assert index.search("   ", 5) == [] and index.search("bees", 0) == []
    with pytest.raises(RetrievalError, match="unknown search mode"):
        index.search("bees", 3, mode="semantic")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf"])
def test_round_trip_save_load_add_delete(
    tmp_path: Path, embedder: Embedder, corpus: list[Document], kind: Any
) -> None:
    folder = tmp_path / "ix"
    index = Index.build(corpus, folder, kind=kind, embedder=embedder)
    assert index.kind == kind

    assert index.delete("python") == 1
    assert index.delete("python") == 0  # unknown now: nothing to do
    assert index.add(NEWCOMER) == 1
    query = "Guido van Rossum programming language"
    for sources in top_sources(index, query, k=len(corpus)).values():
        assert "python" not in sources
    for sources in top_sources(index, "salamander that regrows limbs").values():
        assert sources[0] == "axolotl"

    reloaded = Index.load(folder)  # the default embedder, named by the manifest
    assert sorted(reloaded.sources()) == sorted({d.id for d in corpus} - {"python"} | {"axolotl"})
    assert reloaded.manifest.documents == len(corpus) and reloaded.manifest.chunks == len(corpus)
    if kind == "hnsw":  # HNSW cannot remove: the deleted vector stays as a tombstone
        assert reloaded.manifest.vectors == len(corpus) + 1
    else:
        assert reloaded.manifest.vectors == len(corpus)
    for sources in top_sources(reloaded, query, k=len(corpus)).values():
        assert "python" not in sources
    assert top_sources(reloaded, "axolotl gills")["dense"][0] == "axolotl"
    assert reloaded.document("axolotl").text == NEWCOMER.text
    with pytest.raises(RetrievalError, match="no document 'python'"):
        reloaded.document("python")
    # Only the current generation's files remain.
    generation = reloaded.manifest.generation
    assert generation == 3
    assert data_files(folder) == [
        f"g00000{generation}.bm25",
        f"g00000{generation}.faiss",
        f"g00000{generation}.sqlite",
        "manifest.json",
    ]


def test_add_replaces_a_document_with_the_same_id(
    tmp_path: Path, embedder: Embedder, corpus: list[Document]
) -> None:
    index = Index.build(corpus, tmp_path / "ix", embedder=embedder)
    updated = document_from_text(
        "Coffee is now brewed on the Moon by robots.", id="coffee", title="Coffee"
    )
    index.add(updated)
    assert len(index) == len(corpus)
    hits = index.search("robots brewing coffee", 1)
    assert hits[0].source_id == "coffee" and "robots" in hits[0].text


def test_hnsw_tombstones_are_skipped_then_compacted(
    tmp_path: Path, embedder: Embedder, corpus: list[Document]
) -> None:
    index = Index.build(corpus, tmp_path / "ix", kind="hnsw", embedder=embedder)
    doomed = [d.id for d in corpus[:5]]
    index.delete(doomed)
    assert index.manifest.vectors == len(corpus)  # 5 tombstones, fewer than the live vectors
    hits = index.search("a question about anything", k=len(corpus), mode="dense")
    assert len(hits) == len(corpus) - 5 and not {h.source_id for h in hits} & set(doomed)
    index.delete([d.id for d in corpus[5:9]])  # now tombstones outnumber live vectors
    assert index.manifest.vectors == index.manifest.chunks == len(corpus) - 9
    assert len(Index.load(tmp_path / "ix").search("anything", k=20, mode="dense")) == 3


def test_build_from_paths_and_existing_folder_rules(
    tmp_path: Path, embedder: Embedder, write_pdf: Callable[[Path, list[list[str]]], Path]
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text(
        "# Guide\n\nInstall with pip.\n\n## Use\n\nCall build.\n", encoding="utf-8"
    )
    (docs / "page.html").write_text("<h1>Page</h1><p>Hello from HTML.</p>", encoding="utf-8")
    write_pdf(docs / "paper.pdf", [["A paper about lighthouses."], ["Second page on fog."]])
    index = Index.build([docs], tmp_path / "ix", embedder=embedder)
    assert len(index.sources()) == 3
    hit = index.search("fog", 1, mode="bm25")[0]
    assert hit.section == "page 2" and hit.source_id.endswith("paper.pdf")
    assert_consistent(index, [hit])

    with pytest.raises(RetrievalError, match="already exists") as err:
        Index.build([document_from_text("other")], tmp_path / "ix", embedder=embedder)
    assert "overwrite=True" in (err.value.hint or "")
    rebuilt = Index.build(
        document_from_text("only this text"), tmp_path / "ix", embedder=embedder, overwrite=True
    )
    assert len(rebuilt) == 1 and rebuilt.manifest.generation == 2
    assert len(data_files(tmp_path / "ix")) == 4
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(RetrievalError, match="not empty"):
        Index.build(document_from_text("x"), tmp_path / "junk", embedder=embedder)


def test_a_str_is_a_path_for_build_and_add(
    tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Index.build("docs")`` indexes the folder, never the four letters (issue 9)."""
    monkeypatch.chdir(tmp_path)
    Path("docs").mkdir()
    Path("docs/kites.md").write_text("# Kites\n\nKites fly on windy days.\n", encoding="utf-8")
    Path("bees.txt").write_text("Bees make honey in hives.", encoding="utf-8")
    index = Index.build("docs", embedder=embedder)
    assert index.sources() == ["docs/kites.md"]
    assert "Kites fly on windy days." in index.search("windy", 1)[0].text
    assert index.add("bees.txt") == 1
    assert index.search("honey", 1)[0].source_id == "bees.txt"
    for missing in ("doc", "docs/kite.md", "some words to index"):
        with pytest.raises(PathNotFoundError, match="no file or folder to index") as err:
            index.add(missing)
        assert "document_from_text" in (err.value.hint or "")
    with pytest.raises(PathNotFoundError):
        Index.build(["docs", "nothing-here"], embedder=embedder)  # nothing half-built
    assert index.add(document_from_text("docs", id="word")) == 1  # text, said explicitly
    assert index.document("word").text == "docs"


def test_temporary_index_and_kind_choice(embedder: Embedder) -> None:
    index = Index.build(document_from_text("a temporary text about kites"), embedder=embedder)
    assert index.path.exists() and index.search("kites", 1)[0].text.endswith("kites")
    assert [choose_kind(n) for n in (0, 19_999, 20_000, 999_999, 1_000_000)] == [
        "flat",
        "flat",
        "hnsw",
        "hnsw",
        "ivf",
    ]


def test_bad_arguments_are_refused_before_anything_is_written(
    tmp_path: Path, embedder: Embedder
) -> None:
    doc = document_from_text("a text about kites")
    with pytest.raises(RetrievalError, match="unknown index kind 'hsnw'") as err:
        Index.build(doc, tmp_path / "idx", kind="hsnw", embedder=embedder)  # type: ignore[arg-type]
    assert err.value.hint and not (tmp_path / "idx").exists()
    index = Index.build(doc, embedder=embedder)
    for query in (None, 3, ["kites"]):
        with pytest.raises(RetrievalError, match="a query is a str") as err:
            index.search(query)  # type: ignore[arg-type]
        assert err.value.hint
    with pytest.raises(RetrievalError, match="an index path is a str or Path, not NoneType"):
        Index.load(None)  # type: ignore[arg-type]
    with pytest.raises(RetrievalError, match="text is a bytes, not a str"):
        Document("b", "B", b"bytes")  # type: ignore[arg-type]
    for texts, got in (("kites", "got a str"), (["kites", None], "not a str")):
        with pytest.raises(RetrievalError, match=got):  # not 5 rows, one per character
            embedder.encode(texts)  # type: ignore[arg-type]
    assert embedder.encode(t for t in ["kites", "kits"]).shape == (2, embedder.dimension)  # type: ignore[arg-type]


# --- refusing folders that cannot be trusted ---------------------------------------------


@pytest.fixture()
def saved(tmp_path: Path, embedder: Embedder, corpus: list[Document]) -> Path:
    folder = tmp_path / "ix"
    Index.build(corpus, folder, embedder=embedder).close()
    return folder


def manifest_of(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    return data


def test_truncated_faiss_file_is_refused(saved: Path, embedder: Embedder) -> None:
    faiss_file = saved / manifest_of(saved)["dense_file"]
    faiss_file.write_bytes(faiss_file.read_bytes()[:-100])
    with pytest.raises(IndexCorruptError, match="truncated") as err:
        Index.load(saved, embedder=embedder)
    assert "agentctl index" in (err.value.hint or "")
    with pytest.raises(IndexCorruptError, match="FAISS file"):  # caught even unverified
        Index.load(saved, embedder=embedder, verify=False)


def test_flipped_byte_is_refused(saved: Path, embedder: Embedder) -> None:
    store = saved / manifest_of(saved)["store_file"]
    data = bytearray(store.read_bytes())
    data[len(data) // 2] ^= 0xFF
    store.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="sha256"):
        Index.load(saved, embedder=embedder)


def test_missing_file_and_missing_manifest_are_refused(saved: Path, embedder: Embedder) -> None:
    bm25_dir = saved / manifest_of(saved)["bm25_dir"]
    (bm25_dir / "ids.npy").unlink()
    with pytest.raises(IndexCorruptError, match="missing"):
        Index.load(saved, embedder=embedder)
    (saved / "manifest.json").unlink()
    with pytest.raises(IndexCorruptError, match="not an index folder"):
        Index.load(saved, embedder=embedder)
    with pytest.raises(IndexCorruptError, match="no index folder"):
        Index.load(saved / "nowhere", embedder=embedder)


def test_newer_format_and_garbled_manifest_are_refused(saved: Path, embedder: Embedder) -> None:
    manifest = manifest_of(saved)
    (saved / "manifest.json").write_text(
        json.dumps({**manifest, "format_version": FORMAT_VERSION + 1}), encoding="utf-8"
    )
    with pytest.raises(IndexCorruptError, match="format version") as err:
        Index.load(saved, embedder=embedder)
    assert "upgrade slmkit" in (err.value.hint or "")
    (saved / "manifest.json").write_text('{"format": "slmkit-index", "generat', encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="not JSON"):
        Index.load(saved, embedder=embedder)


def test_other_embedder_is_refused(saved: Path) -> None:
    # The same weights under another name still count as another embedder: the manifest
    # can only vouch for the name it recorded.
    other = Embedder(default_model_path())
    with pytest.raises(IndexCorruptError, match="built with embedder") as err:
        Index.load(saved, embedder=other)
    assert "sentence-transformers/all-MiniLM-L6-v2" in (err.value.hint or "")


# --- crash safety -------------------------------------------------------------------------


def _fail(*_: object, **__: object) -> None:
    raise OSError("simulated crash")


def _fail_after_partial_manifest(folder: Path, manifest: Any) -> None:
    (folder / "manifest.json.tmp").write_text(manifest.model_dump_json()[:50], encoding="utf-8")
    raise OSError("simulated crash while writing the manifest")


CRASH_POINTS = {
    "store-write": (ChunkStore, "put", _fail),
    "faiss-write": (DenseIndex, "save", _fail),
    "bm25-write": (Bm25Index, "save", _fail),
    "manifest-write": (generation_module, "commit_manifest", _fail_after_partial_manifest),
}


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
def test_crash_during_add_leaves_a_consistent_index(
    point: str,
    tmp_path: Path,
    embedder: Embedder,
    corpus: list[Document],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    folder = tmp_path / "ix"
    index = Index.build(corpus, folder, kind="hnsw", embedder=embedder)
    before = data_files(folder)
    target, name, failure = CRASH_POINTS[point]
    with monkeypatch.context() as patch:
        patch.setattr(target, name, failure)
        with pytest.raises(OSError, match="simulated crash"):
            index.add(NEWCOMER)
        if point == "store-write":
            with pytest.raises(OSError, match="simulated crash"):
                index.add(NEWCOMER)  # a second failed try is just as harmless

    for survivor in (index, Index.load(folder)):  # the open index, and the folder on disk
        assert "axolotl" not in survivor.sources() and len(survivor) == len(corpus)
        for sources in top_sources(survivor, "salamander that regrows limbs", k=5).values():
            assert "axolotl" not in sources
        assert top_sources(survivor, "Guido van Rossum")["dense"][0] == "python"

    # The crashed write may leave files of generation 2 behind; generation 1 is untouched.
    assert set(before) <= set(data_files(folder)) and manifest_of(folder)["generation"] == 1
    # Work resumes: the next add commits and sweeps away the crashed write's leftovers.
    index.add(NEWCOMER)
    assert (
        top_sources(Index.load(folder), "salamander that regrows limbs")["hybrid"][0] == "axolotl"
    )
    assert len(data_files(folder)) == 4


def test_crash_during_delete_keeps_the_document(
    tmp_path: Path, embedder: Embedder, corpus: list[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "ix"
    index = Index.build(corpus, folder, embedder=embedder)  # flat: delete removes vectors
    with monkeypatch.context() as patch:
        patch.setattr(generation_module, "commit_manifest", _fail_after_partial_manifest)
        with pytest.raises(OSError):
            index.delete("python")
    for survivor in (index, Index.load(folder)):
        assert "python" in survivor.sources() and survivor.manifest.vectors == len(corpus)
        assert top_sources(survivor, "Guido van Rossum")["dense"][0] == "python"


def test_copy_of_index_folder_loads_elsewhere(saved: Path, tmp_path: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(saved, moved)
    assert Index.load(moved).search("chess board", 1)[0].source_id == "chess"
