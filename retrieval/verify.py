"""Check that a quote really occurs in its source, and find where.

Three tiers, strictest first:

1. ``exact``: the quote (minus surrounding whitespace) is a substring of the source.
2. ``normalized``: equal after Unicode NFKC, case folding, curly quotes and dash
   variants mapped to ASCII, invisible format characters dropped and whitespace runs
   collapsed. These differences are typography, not content: a model that writes ``"``
   for ``“`` or re-wraps a line still quotes literally. The match is mapped back to
   offsets in the *original* source text.
3. ``fuzzy``: a difflib alignment of the normalized quote against the normalized source,
   reported with its similarity score when it reaches ``fuzzy_threshold``.

Only tiers 1 and 2 set ``verified=True``. A fuzzy match, however close, has changed at
least one word, and the point of a verified citation is that the quoted words are the
source's words; so a fuzzy match is reported (span and score, for a UI to show "close
but not verbatim") and never verified. ``rapidfuzz`` is not a dependency; the standard
library's ``difflib`` is fast enough at passage scale.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Literal

from .errors import RetrievalError

__all__ = ["QuoteMatch", "normalize_text", "verify_quote"]

MatchMethod = Literal["exact", "normalized", "fuzzy", "none"]

_CHAR_MAP = str.maketrans(
    {
        **dict.fromkeys("‘’‚‛′‵`´", "'"),
        **dict.fromkeys("“”„‟″‶«»", '"'),
        **dict.fromkeys("‐‑‒–—―−﹘﹣－⁃", "-"),
    }
)
_MAX_CANDIDATES = 24


@dataclass(frozen=True, slots=True)
class QuoteMatch:
    """Where a quote was found: ``source_text[start:end]``, how, and how well (0..1).

    ``start``/``end`` are None when nothing matched (``method="none"``); ``score`` is then
    the best fuzzy similarity seen, to say how far off the quote was.
    """

    verified: bool
    start: int | None
    end: int | None
    score: float
    method: MatchMethod


def _normalized_with_map(text: str) -> tuple[str, list[int], list[int]]:
    """Normalize ``text``; also return, per output char, its source span ``[start, end)``.

    Work is done per grapheme-ish cluster (a character and its combining marks) so NFKC
    can compose ``e`` + U+0301 into ``é`` exactly as it does in the quote.
    """
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and unicodedata.combining(text[j]):
            j += 1
        cluster = text[i:j]
        if not cluster.isspace() and unicodedata.category(cluster[0]) == "Cf":
            i = j  # soft hyphens, zero-width spaces, direction marks: invisible
            continue
        for ch in unicodedata.normalize("NFKC", cluster).casefold().translate(_CHAR_MAP):
            if ch.isspace():
                if out and out[-1] == " ":
                    ends[-1] = j
                    continue
                ch = " "
            out.append(ch)
            starts.append(i)
            ends.append(j)
        i = j
    return "".join(out), starts, ends


def normalize_text(text: str) -> str:
    """The normalized form used for matching (see the module docstring)."""
    return _normalized_with_map(text)[0].strip()


def _fuzzy(needle: str, hay: str) -> tuple[float, int, int]:
    """Best ``(score, start, end)`` alignment of ``needle`` inside ``hay`` (normalized)."""
    anchors = SequenceMatcher(None, hay, needle, autojunk=False).get_matching_blocks()
    anchors = sorted((b for b in anchors if b.size), key=lambda b: -b.size)[:_MAX_CANDIDATES]
    slack = len(needle) // 10 + 2
    best = (0.0, 0, 0)
    for block in anchors:
        lo = max(0, block.a - block.b - slack)
        hi = min(len(hay), block.a - block.b + len(needle) + slack)
        blocks = [
            b
            for b in SequenceMatcher(None, hay[lo:hi], needle, autojunk=False).get_matching_blocks()
            if b.size
        ]
        if not blocks:
            continue
        start, end = lo + blocks[0].a, lo + blocks[-1].a + blocks[-1].size
        score = SequenceMatcher(None, hay[start:end], needle, autojunk=False).ratio()
        if score > best[0]:
            best = (score, start, end)
    return best


def verify_quote(quote: str, source_text: str, *, fuzzy_threshold: float = 0.9) -> QuoteMatch:
    """Locate ``quote`` in ``source_text``: exact, then normalized, then fuzzy.

    Offsets always index ``source_text`` as given. ``verified`` is True only for exact
    and normalized matches; a fuzzy match at or above ``fuzzy_threshold`` reports its
    span and score with ``verified=False``.
    """
    if not isinstance(quote, str) or not isinstance(source_text, str):
        raise RetrievalError(
            f"verify_quote takes two str, not {type(quote).__name__} and "
            f"{type(source_text).__name__}",
            hint="verify_quote(quote, index.document(source_id).text)",
        )
    stripped = quote.strip()
    if not stripped:
        return QuoteMatch(False, None, None, 0.0, "none")
    pos = source_text.find(stripped)
    if pos >= 0:
        return QuoteMatch(True, pos, pos + len(stripped), 1.0, "exact")
    needle = normalize_text(stripped)
    if not needle:
        return QuoteMatch(False, None, None, 0.0, "none")
    hay, starts, ends = _normalized_with_map(source_text)
    pos = hay.find(needle)
    if pos >= 0:
        return QuoteMatch(True, starts[pos], ends[pos + len(needle) - 1], 1.0, "normalized")
    score, a, b = _fuzzy(needle, hay)
    while a < b and hay[a] == " ":
        a += 1
    while b > a and hay[b - 1] == " ":
        b -= 1
    score = round(score, 4)
    if score >= fuzzy_threshold and a < b:
        return QuoteMatch(False, starts[a], ends[b - 1], score, "fuzzy")
    return QuoteMatch(False, None, None, score, "none")
