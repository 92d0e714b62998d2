"""The cited-answer format: the grammar a model decodes under, and its parser.

The model writes one to ``max_sentences`` lines, each a sentence followed by a
citation, or the refusal alone::

    Assert statements insert debugging assertions. [1] "insert debugging assertions"
    The sources do not say.

The grammar (llguidance's Lark dialect) makes three promises while decoding:

* the output always has this shape, so parsing never guesses;
* a marker ``[i]`` can only name one of the retrieved passages;
* the quote after ``[i]`` can only be a verbatim run of whole words of passage ``i``.

The last one uses llguidance's ``%regex {"substring_words": ...}``, which matches any
contiguous run of the text's words (compiled into the lexer's automaton, so the mask
costs about a millisecond per token). One alternative per passage binds each marker to its own
passage. Quotes never contain ``"`` (it closes the quote) and never cross a blank line
(a paragraph, a code block and the prose after it are different claims), so each
passage is split at both into *segments*, and the quote is a substring of one of them,
intersected with a length and word-boundary regex so quotes stay short and readable.

A sentence is one lexeme that runs up to and including the ``. [`` that opens its
marker. Inside it a full stop must be followed by a non-space (``1.25``, ``os.path``),
so the first full stop followed by a space ends the sentence and the citation must
follow: one sentence, one citation. Its length is capped (``max_sentence_chars``) so a
small model that never gets to a full stop is made to; otherwise it repeats itself
until the token budget runs out, leaving nothing to parse. (An abbreviation such as
"e.g. " also ends a sentence: a price worth paying.)

The refusal is a lazy lexeme, so it can share its first words with an ordinary sentence
("The sources ...") without the lexer choosing between them too early.

The parser lives next to the grammar so the two cannot drift apart; it also accepts
*unconstrained* output (a model without grammar support) and then reports malformed or
out-of-range parts instead of trusting them.

The *grounded* format (:func:`grounded_grammar`) goes further: the model writes no words
of its own. Each line is a marker and then one whole sentence of that passage, chosen
from a list of candidate sentences that the grammar spells out as literals::

    [1] Assert statements are a convenient way to insert debugging assertions into a program:
    The sources do not say.

so the sentence *is* its quote and supports itself by construction; what the model
decides is which sentences answer the question, or that none does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_QUOTE_CHARS",
    "MAX_SENTENCE_CHARS",
    "MIN_QUOTE_CHARS",
    "REFUSAL",
    "Claim",
    "ParsedAnswer",
    "citation_grammar",
    "grounded_grammar",
    "parse_cited_output",
    "parse_grounded_output",
    "quotable_segments",
]

REFUSAL = "The sources do not say."
"""What the model writes when the passages do not answer the question."""
MIN_QUOTE_CHARS = 20
"""Shorter quotes ("The simple form") rarely carry the evidence a sentence needs."""
MAX_QUOTE_CHARS = 160
"""Longer quotes cost tokens and stop being a pointer into the source."""
MAX_SENTENCE_CHARS = 200
"""A sentence this long without a citation is rambling; the grammar ends it."""

_GROUNDED_LINE = re.compile(r"^\s*\[(?P<marker>\d+)\]\s*(?P<sentence>\S.*?)\s*$")
_SEGMENT_BREAK = re.compile(r'"|\n[^\S\n]*\n')
_CLAIM = re.compile(
    r'(?P<sentence>[^\n\[\]]*?)\s*\[(?P<marker>\d+)\]\s*"(?P<quote>[^"]*)"', re.DOTALL
)


def quotable_segments(text: str, min_chars: int) -> list[str]:
    """The parts of ``text`` a quote may come from: split at ``"`` and blank lines.

    Segments are stripped (still exact substrings of ``text``) and those shorter than
    ``min_chars`` are dropped, since no quote of the minimum length fits in them.
    """
    parts = (part.strip() for part in _SEGMENT_BREAK.split(text))
    return [part for part in parts if len(part) >= min_chars]


def _quote_terminal(text: str, min_chars: int, max_chars: int) -> str | None:
    """The Lark terminal body for "a quote from ``text``", or None if none can fit."""
    segments = quotable_segments(text, min_chars)
    if not segments:
        return None
    alternatives = " | ".join(
        "%regex " + json.dumps({"substring_words": seg}, ensure_ascii=True) for seg in segments
    )
    # Starts on a word character, ends on a non-space: no dangling spaces or a stray
    # leading comma. `(?s:.)` lets a quote follow a hard-wrapped line onto the next.
    shape = rf"/\w(?s:.){{{max(0, min_chars - 2)},{max_chars - 2}}}[^\s]/"
    return f"({alternatives}) & {shape}"


def citation_grammar(
    passages: Sequence[str],
    *,
    max_sentences: int = 3,
    min_quote_chars: int = MIN_QUOTE_CHARS,
    max_quote_chars: int = MAX_QUOTE_CHARS,
    max_sentence_chars: int = MAX_SENTENCE_CHARS,
    allow_refusal: bool = True,
) -> str:
    """The Lark grammar for an answer citing ``passages`` (numbered from 1).

    A passage with no segment of at least ``min_quote_chars`` characters cannot be
    cited (its marker is not offered). With no citable passage at all, the only
    output allowed is the refusal.
    """
    if max_sentences < 1:
        raise ValueError("max_sentences must be >= 1")
    if not 2 <= min_quote_chars <= max_quote_chars:
        raise ValueError("need 2 <= min_quote_chars <= max_quote_chars")
    if max_sentence_chars < 8:
        raise ValueError("max_sentence_chars must be >= 8")
    # Counted in units of one character, or two for an inner full stop and what follows.
    rules: list[str] = []
    cites: list[str] = []
    for number, text in enumerate(passages, start=1):
        terminal = _quote_terminal(text, min_quote_chars, max_quote_chars)
        if terminal is None:
            continue
        cites.append(f"cite_{number}")
        # The sentence lexeme already ends with " [": the marker goes on from there.
        rules.append(f'cite_{number}: "{number}] \\"" QUOTE_{number} "\\""')
        rules.append(f"QUOTE_{number}: {terminal}")
    refusal = r"refusal[lazy]: /The sources do not say\./"
    if not cites:
        return f"start: refusal\n{refusal}\n"
    head = [
        *(["start: refusal | answer", refusal] if allow_refusal else ["start: answer"]),
        f'answer: claim ("\\n" claim){{0,{max_sentences - 1}}}',
        "claim: sentence cite",
        rf"sentence[lazy]: /[A-Z](?:[^\n\[\].]|\.[^\s\[\].]){{0,{max_sentence_chars}}}\. \[/",
        "cite: " + " | ".join(cites),
    ]
    return "\n".join([*head, *rules]) + "\n"


@dataclass(frozen=True, slots=True)
class Claim:
    """One sentence of an answer and the citation that follows it (marker is 1-based)."""

    sentence: str
    marker: int
    quote: str


@dataclass(frozen=True, slots=True)
class ParsedAnswer:
    """What an output says: a refusal, or claims; ``complete`` is False when leftover
    text did not parse (cut off by the token budget, or an unconstrained model's prose)."""

    claims: tuple[Claim, ...]
    refused: bool
    complete: bool
    leftover: str = ""


def _is_refusal(text: str) -> bool:
    words = re.sub(r"[^a-z ]", "", text.lower()).split()
    return " ".join(words) == "the sources do not say"


def parse_cited_output(text: str) -> ParsedAnswer:
    """Split model output into claims, or recognize the refusal.

    Works on any output: for grammar-constrained output every part parses; for free
    text, the claims that match the format are kept and the rest is ``leftover``.
    """
    stripped = text.strip()
    if _is_refusal(stripped):
        return ParsedAnswer((), refused=True, complete=True)
    claims: list[Claim] = []
    leftover: list[str] = []
    pos = 0
    for m in _CLAIM.finditer(stripped):
        leftover.append(stripped[pos : m.start()])
        pos = m.end()
        sentence = " ".join(m["sentence"].split())
        claims.append(Claim(sentence, int(m["marker"]), m["quote"]))
    leftover.append(stripped[pos:])
    rest = " ".join(" ".join(leftover).split())
    if not claims and REFUSAL.lower().rstrip(".") in rest.lower():
        return ParsedAnswer((), refused=True, complete=_is_refusal(rest), leftover=rest)
    return ParsedAnswer(tuple(claims), refused=False, complete=not rest, leftover=rest)


def grounded_grammar(
    candidates: Sequence[tuple[int, str]],
    *,
    max_sentences: int = 3,
    allow_refusal: bool = True,
) -> str:
    """The Lark grammar for a grounded answer: up to ``max_sentences`` lines, each
    ``[i] <a candidate sentence of passage i>`` verbatim, or the refusal.

    ``candidates`` are ``(passage number, sentence)`` pairs; a sentence must be one
    line (its whitespace collapsed). With no candidates only the refusal is allowed.
    """
    if max_sentences < 1:
        raise ValueError("max_sentences must be >= 1")
    by_marker: dict[int, list[str]] = {}
    for marker, sentence in candidates:
        if "\n" in sentence or not sentence.strip():
            raise ValueError(f"a candidate sentence must be one non-empty line: {sentence!r}")
        by_marker.setdefault(marker, []).append(sentence)
    refusal = r"refusal[lazy]: /The sources do not say\./"
    if not by_marker:
        return f"start: refusal\n{refusal}\n"
    rules = [
        f'line_{m}: "{m}] " ('
        + " | ".join(json.dumps(s, ensure_ascii=True) for s in dict.fromkeys(sentences))
        + ")"
        for m, sentences in sorted(by_marker.items())
    ]
    head = [
        *(["start: refusal | answer", refusal] if allow_refusal else ["start: answer"]),
        f'answer: line ("\\n" line){{0,{max_sentences - 1}}}',
        'line: "[" (' + " | ".join(f"line_{m}" for m in sorted(by_marker)) + ")",
    ]
    return "\n".join([*head, *rules]) + "\n"


def parse_grounded_output(text: str) -> ParsedAnswer:
    """Split grounded output into claims whose sentence is also their quote.

    Lines that are not ``[i] sentence`` are leftover (an unconstrained model's prose).
    """
    stripped = text.strip()
    if _is_refusal(stripped):
        return ParsedAnswer((), refused=True, complete=True)
    claims: list[Claim] = []
    leftover: list[str] = []
    for line in stripped.splitlines():
        m = _GROUNDED_LINE.match(line)
        if m:
            claims.append(Claim(m["sentence"], int(m["marker"]), m["sentence"]))
        elif line.strip():
            leftover.append(line.strip())
    rest = " ".join(leftover)
    if not claims and REFUSAL.lower().rstrip(".") in rest.lower():
        return ParsedAnswer((), refused=True, complete=_is_refusal(rest), leftover=rest)
    return ParsedAnswer(tuple(claims), refused=False, complete=not rest, leftover=rest)
