"""Errors of :mod:`slmkit.retrieval`, under the one tree drawn in ``slmkit.models.errors``.

``RetrievalError`` covers misuse and unreadable inputs (a file type we cannot parse, an
index path that is in the way). ``IndexCorruptError`` is kept apart because the right
response is different: the folder on disk cannot be trusted and must be rebuilt, so
callers (the CLI, the demo) can catch it and offer exactly that.
"""

from __future__ import annotations

from slmkit.models import SlmkitError

__all__ = ["IndexCorruptError", "RetrievalError"]


class RetrievalError(SlmkitError):
    """Loading documents, embedding or searching failed in a way the user can fix."""


class IndexCorruptError(RetrievalError):
    """An index folder is truncated, corrupt, from a newer slmkit, or made by another embedder."""
