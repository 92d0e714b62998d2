"""The FAISS vector index: kind chosen by corpus size, ids kept stable, GPU when present.

Kinds follow FAISS's "guidelines to choose an index":

- ``flat`` (``IndexFlatIP``): exact search. Brute force over fewer than
  :data:`FLAT_MAX` vectors takes about a millisecond, so approximation buys nothing.
- ``hnsw`` (``IndexHNSWFlat``, M=32): the fastest accurate choice while the vectors
  and graph fit in RAM, up to :data:`HNSW_MAX` vectors.
- ``ivf`` (``IndexIVFFlat`` with ``nlist ~ 4*sqrt(N)`` centroids trained on the data):
  beyond that, where a graph over every vector gets too big and slow to build.

Vectors carry the chunk store's ids: ``flat`` and ``hnsw`` through an ``IndexIDMap2``
wrapper, ``ivf`` natively (an id map over IVF breaks on removal, because IVF does not
renumber what is left). Flat and IVF remove vectors on delete. HNSW cannot remove a node
from its graph, so deleted vectors stay as tombstones: the caller filters ids that no
longer exist and over-fetches by the number of tombstones, and :meth:`compact` rebuilds
the graph from the live vectors when tombstones pile up.

With faiss-gpu installed and a GPU visible, flat and IVF searches run on a GPU copy
(made lazily, dropped on change); HNSW has no GPU version in FAISS and stays on CPU.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from .manifest import DenseParams

__all__ = ["FLAT_MAX", "HNSW_MAX", "DenseIndex", "Kind", "choose_kind"]

Kind = Literal["flat", "hnsw", "ivf"]
FLAT_MAX = 20_000
HNSW_MAX = 1_000_000
_IVF_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per centroid


def choose_kind(n_vectors: int) -> Kind:
    """The index kind FAISS's guidelines suggest for ``n_vectors`` vectors."""
    if n_vectors < FLAT_MAX:
        return "flat"
    return "hnsw" if n_vectors < HNSW_MAX else "ivf"


def _gpu_available() -> bool:
    import faiss

    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


class DenseIndex:
    """A FAISS index whose labels are chunk ids."""

    def __init__(self, index: Any, params: DenseParams) -> None:
        self.index = index
        self.params = params
        self._gpu: Any = None
        self._gpu_lock = threading.Lock()
        self._apply_search_params()

    # --- construction -------------------------------------------------------------------

    @classmethod
    def build(
        cls, vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64], params: DenseParams
    ) -> DenseIndex:
        """A new index of ``params.kind`` holding ``vectors`` labelled ``ids``.

        For IVF, ``nlist``/``nprobe`` of 0 are set from the corpus size and the centroids
        are trained on ``vectors``; later additions are assigned to those centroids.
        """
        import faiss

        dim = vectors.shape[1]
        index: Any
        if params.kind == "flat":
            index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        elif params.kind == "hnsw":
            graph = faiss.IndexHNSWFlat(dim, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            graph.hnsw.efConstruction = params.ef_construction
            index = faiss.IndexIDMap2(graph)
        else:
            n = len(vectors)
            nlist = params.nlist or max(1, min(round(4 * math.sqrt(n)), n // _IVF_POINTS_PER_LIST))
            # Probing 1/8 of the lists (at least 16) keeps recall@10 high at 4*sqrt(N) lists
            # (see benchmarks/retrieval.py); small indexes are then searched exhaustively.
            nprobe = params.nprobe or max(16, math.ceil(nlist / 8))
            params = params.model_copy(update={"nlist": nlist, "nprobe": min(nprobe, nlist)})
            index = faiss.IndexIVFFlat(
                faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT
            )
            index.train(vectors)
        dense = cls(index, params)
        dense.add(vectors, ids)
        return dense

    @classmethod
    def load(cls, path: Path, params: DenseParams) -> DenseIndex:
        """Read a FAISS file written by :meth:`save` (raises RuntimeError if unreadable)."""
        import faiss

        return cls(faiss.read_index(str(path)), params)

    def save(self, path: Path) -> None:
        """Write the CPU index to ``path``."""
        import faiss

        faiss.write_index(self.index, str(path))

    def _apply_search_params(self) -> None:
        import faiss

        if self.params.kind == "hnsw":
            graph: Any = faiss.downcast_index(self.index.index)
            graph.hnsw.efSearch = self.params.ef_search
        elif self.params.kind == "ivf":
            self.index.nprobe = self.params.nprobe

    # --- mutation -----------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Vectors held, tombstones included."""
        return int(self.index.ntotal)

    @property
    def dimension(self) -> int:
        """Vector length."""
        return int(self.index.d)

    def add(self, vectors: npt.NDArray[np.float32], ids: npt.NDArray[np.int64]) -> None:
        """Add vectors labelled with (new, never used) chunk ids."""
        if len(vectors):
            self.index.add_with_ids(vectors, ids)
            self._gpu = None

    def remove(self, ids: Iterable[int]) -> None:
        """Remove vectors; for HNSW they stay as tombstones (see the module docstring)."""
        id_array = np.fromiter(ids, dtype=np.int64)
        if len(id_array) and self.params.kind != "hnsw":
            self.index.remove_ids(id_array)
            self._gpu = None

    def compact(self, live_ids: set[int]) -> DenseIndex:
        """A rebuilt HNSW index holding only the vectors whose id is in ``live_ids``."""
        import faiss

        graph = faiss.downcast_index(self.index.index)
        all_ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
        keep = np.fromiter((int(i) in live_ids for i in all_ids), dtype=bool, count=len(all_ids))
        vectors = np.ascontiguousarray(graph.reconstruct_n(0, graph.ntotal)[keep])
        return DenseIndex.build(vectors, all_ids[keep], self.params)

    # --- search -------------------------------------------------------------------------

    def search(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """``(scores, ids)`` of shape ``(n_queries, k)``; missing results have id -1."""
        k = min(k, self.ntotal)
        if k <= 0:
            n = len(queries)
            return np.zeros((n, 0), dtype=np.float32), np.zeros((n, 0), dtype=np.int64)
        if self.params.kind != "hnsw" and _gpu_available():
            return self._search_gpu(queries, k)
        if len(queries) > 1:
            scores, ids = self.index.search(queries, k)
            return scores, ids
        return self._search_one_thread(queries, k)

    def _search_one_thread(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Search without OpenMP threads.

        One query is too little work to share out: waking OpenMP workers costs more than
        the search, and on a small machine where torch's threads are busy too they spin
        against each other (measured: 36 ms instead of 2 ms for Flat over 11k vectors on
        2 cores). ``omp_set_num_threads`` sets the calling thread's value only.
        """
        import faiss

        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            scores, ids = self.index.search(queries, k)
        finally:
            faiss.omp_set_num_threads(threads)
        return scores, ids

    def _search_gpu(
        self, queries: npt.NDArray[np.float32], k: int
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        import faiss

        with self._gpu_lock:
            if self._gpu is None:
                resources = faiss.StandardGpuResources()
                gpu: Any
                if self.params.kind == "flat":
                    # Clone the inner flat index; labels are mapped back through id_map.
                    gpu = faiss.index_cpu_to_gpu(resources, 0, self.index.index)
                    id_map = faiss.vector_to_array(self.index.id_map).astype(np.int64)
                else:
                    gpu = faiss.index_cpu_to_gpu(resources, 0, self.index)
                    gpu.nprobe = self.params.nprobe
                    id_map = None
                self._gpu = (resources, gpu, id_map)
            _, gpu, id_map = self._gpu
        scores, rows = gpu.search(queries, k)
        if id_map is None:
            return scores, rows
        return scores, np.where(rows >= 0, id_map[np.maximum(rows, 0)], -1)
