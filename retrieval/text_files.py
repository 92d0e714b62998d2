"""Reading a text file into a ``str`` without silently changing a byte of it.

Citations are verified as literal substrings of a document's text, so the text must be
what the file says. Decoding with ``errors="replace"`` would turn each undecodable byte
into U+FFFD: a quote of that passage could then never match the source a reader opens.
So UTF-8 (a BOM dropped, so offset 0 is the first character) is read as is; a file in
another encoding (Windows-1252, Latin-1, Shift-JIS ...) is decoded with
charset-normalizer's best guess, which is logged; a file no text encoding fits (a binary
file named ``.txt``) is an error that names it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from charset_normalizer import from_bytes

from .errors import RetrievalError

__all__ = ["read_text_file"]

_log = logging.getLogger(__name__)


def read_text_file(path: Path) -> str:
    """The text of ``path``: UTF-8, else the encoding the bytes fit best (logged)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise RetrievalError(f"cannot read {path}: {exc}", hint="check the path") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf8_error = exc
    best = from_bytes(data).best()
    if best is None or "\x00" in str(best):
        raise RetrievalError(
            f"{path} is not text: it is not UTF-8 ({utf8_error.reason} at byte "
            f"{utf8_error.start}) and no other text encoding fits its bytes",
            hint="convert it to UTF-8 (iconv -t UTF-8), or leave it out of the folder",
        )
    _log.warning("%s is not UTF-8; read it as %s", path, best.encoding)
    return str(best)
