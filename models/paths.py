"""Paths: where slmkit keeps what it derives, and what a ``str`` argument means.

Every public function that accepts ``str | os.PathLike`` for a file reads a ``str`` as a
*path*, through the helpers here, never as the text itself: ``Index.build("docs")``
indexes the folder ``docs``, and a name that does not exist is a
:class:`~slmkit.models.errors.PathNotFoundError`, not a four-letter document that then
answers every search. Text is passed in a form that says so (a ``Document``, a
``text=`` argument). The one exception is an option documented as "text or a file"
(a domain policy, say): :func:`path_or_text` reads it as text only when it cannot be a
file name (it spans lines or has spaces), and a file name that is missing is an error.
Model targets are either local paths or hub ids: :func:`model_location` tells them apart.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from slmkit.models.errors import PathNotFoundError

__all__ = ["cache_dir", "existing_path", "looks_like_path", "model_location", "path_or_text"]

PathKind = Literal["any", "file", "folder"]

_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_MODEL_FILES = (".gguf", ".safetensors", ".bin", ".pt", ".pth")


def cache_dir(*parts: str) -> Path:
    """``$SLMKIT_CACHE`` (default ``~/.cache/slmkit``) joined with ``parts``, created."""
    env = os.environ.get("SLMKIT_CACHE")
    root = Path(env).expanduser() if env else Path.home() / ".cache" / "slmkit"
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def looks_like_path(text: str) -> bool:
    """Whether ``text`` reads as a file name: one token with a separator, ``~``/``.`` or a suffix.

    Used to decide between text and a path where both are allowed, and to word errors.
    """
    if not text or len(text) > 4096 or any(c.isspace() for c in text):
        return False
    return (
        "/" in text or os.sep in text or text.startswith(("~", ".")) or bool(_SUFFIX.search(text))
    )


def existing_path(
    value: str | os.PathLike[str],
    *,
    what: str = "file or folder",
    kind: PathKind = "any",
    hint: str | None = None,
) -> Path:
    """``value`` (``~`` expanded) as a :class:`Path` that exists, of the ``kind`` asked for.

    Args:
        value: a path; a ``str`` is always a path here, never text.
        what: what the path should be, for the error message ("tasks file").
        kind: ``file``, ``folder`` or ``any``.
        hint: more advice for the error (how to pass text instead, say).

    Raises:
        PathNotFoundError: nothing is there, or it is a folder where a file is needed
            (or the other way round), or ``value`` is no path at all (``None``).
    """
    text = _fspath(value, what, hint)
    if not text.strip():  # Path("") is ".", the current folder: never what was meant
        raise PathNotFoundError(
            f"an empty name where a {what} is needed", hint=hint or "give a path"
        )
    path = Path(value).expanduser()
    found = {"any": path.exists, "file": path.is_file, "folder": path.is_dir}[kind]()
    if found:
        return path
    shown = text if len(text) <= 80 else text[:77] + "..."
    if path.exists():
        other = "a folder" if path.is_dir() else "not a folder"
        raise PathNotFoundError(
            f"{what} {shown!r} is {other}",
            hint="; ".join(filter(None, [f"give the path of a {kind}", hint])),
        )
    where = "" if path.is_absolute() else f" (relative to {Path.cwd()})"
    raise PathNotFoundError(
        f"no {what} at {shown!r}{where}",
        hint="; ".join(filter(None, ["check the path", hint])),
    )


def _fspath(value: object, what: str, hint: str | None) -> str:
    """``os.fspath(value)``, or the error a path argument that is no path deserves."""
    if not isinstance(value, str | os.PathLike):
        raise PathNotFoundError(
            f"a {what} is needed, and {type(value).__name__} {value!r:.40} is no path",
            hint=hint or "give a path (a str or pathlib.Path)",
        )
    return os.fspath(value)


def path_or_text(value: str | os.PathLike[str]) -> Path | str:
    """For options documented as "text or a file": the existing file, or the text.

    A ``PathLike`` must exist. A ``str`` naming an existing file is that file; a ``str``
    that reads as a file name (:func:`looks_like_path`) but names nothing is an error;
    anything else (words with spaces, several lines) is text.
    """
    if isinstance(value, str) and not looks_like_path(value):
        candidate = Path(value).expanduser()
        return candidate if value and len(value) < 4096 and candidate.is_file() else value
    return existing_path(value, what="file", kind="file", hint="or pass the text itself")


def model_location(target: str | os.PathLike[str]) -> Path | str:
    """A model target as a local path (which must exist) or a hub id (left to the hub).

    An existing file or folder is local. A target that can only be a local path
    (absolute, ``~``, ``./``, ``../``, a model-file suffix, or more than one ``/``)
    must exist. Anything else that fits a hub id (``org/name`` or ``name``) is one.
    """
    text = _fspath(target, "model file or folder", None)
    path = Path(text).expanduser()
    if text.strip() and path.exists():
        return path
    local = (
        not text.strip()
        or not isinstance(target, str)
        or path.is_absolute()
        or text.startswith(("~", "./", "../", "."))
        or text.lower().endswith(_MODEL_FILES)
        or not _HUB_ID.match(text)
    )
    if local:
        return existing_path(
            target, what="model file or folder", hint="a hub id has the form org/name"
        )
    return text
