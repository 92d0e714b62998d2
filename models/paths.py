"""Where slmkit keeps what it derives once and reuses: converted models, fetched data."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(*parts: str) -> Path:
    """``$SLMKIT_CACHE`` (default ``~/.cache/slmkit``) joined with ``parts``, created."""
    env = os.environ.get("SLMKIT_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "slmkit"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
