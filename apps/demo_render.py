"""HTML and chat text for the demo: two facts per quote, shown apart.

Each quote gets two badges: **verbatim** (the verifier found it at its span in the
source) and **supports** (it backs the sentence that cites it, by the support score),
each green, red, or grey when not checked; hover says why. The chat text flags
sentences no quote supports and counts both facts separately. Everything from the model
or the documents is HTML-escaped here.
"""

from __future__ import annotations

import html

from slmkit.retrieval import Citation, CitedAnswer, Passage

__all__ = ["EMPTY_PANEL", "render_chat", "render_sources"]

EMPTY_PANEL = '<div class="slm-sources"><p class="slm-note">Sources appear here.</p></div>'
_BEFORE_CHARS, _AFTER_CHARS = 160, 320  # passage text shown around quotes in the panel


def _badge(fact: str, ok: bool | None, label: str, why: str) -> str:
    cls = {True: "slm-yes", False: "slm-no", None: "slm-unknown"}[ok]
    mark = {True: "✓", False: "✗", None: "?"}[ok]
    return (
        f'<span class="slm-badge {cls}" data-fact="{fact}" title="{html.escape(why)}">'
        f"{mark} {label}</span>"
    )


def _badges(c: Citation, *, copied: bool = False) -> str:
    """Two badges, two facts: is the quote verbatim, does it support its sentence.

    ``copied``: the sentence is the quote itself (a grounded answer)."""
    if c.verified:
        verbatim = _badge("verbatim", True, "verbatim", f"found in the source ({c.method} match)")
    else:
        why = (
            f"closest source text is {c.score:.0%} similar"
            if c.method == "fuzzy"
            else "not found in the source"
        )
        verbatim = _badge("verbatim", False, "not verbatim", why)
    if c.supports is None:
        support = _badge("supports", None, "support not scored", "no support score")
    elif not c.verified:
        support = _badge("supports", False, "supports nothing", "a quote not in the source")
    elif copied:
        why = "the sentence is this quote, copied from the source"
        support = _badge("supports", True, "supports its sentence", why)
    else:
        why = (
            f"support {c.support:.2f}: {c.support_lexical or 0:.0%} of the sentence's "
            f"words are in the quote, meaning similarity {c.support_semantic or 0:.2f}"
        )
        label = "supports its sentence" if c.supports else "does not support its sentence"
        support = _badge("supports", c.supports, label, why)
    return verbatim + support


def _window(text: str, first: int, last: int) -> tuple[int, int]:
    """The part of ``text`` to show around quotes spanning ``[first, last)``.

    A little before (at most ``_BEFORE_CHARS`` and two line breaks: code and hard-wrapped
    text are tall) and more after, cut at whitespace, so the highlight is in view.
    """
    lo = max(0, first - _BEFORE_CHARS)
    breaks = [i for i in range(first - 1, lo - 1, -1) if text[i] == "\n"]
    if len(breaks) > 2:
        lo = breaks[2] + 1
    if lo > 0 and not text[lo - 1].isspace():
        space = text.find(" ", lo)
        lo = space + 1 if 0 <= space < first else lo
    hi = min(len(text), last + _AFTER_CHARS)
    if hi < len(text):
        space = text.rfind(" ", last, hi)
        hi = space if space > last else hi
    return lo, hi


def _highlighted(p: Passage, citations: list[Citation]) -> str:
    """The passage around its located quotes, escaped, each quote wrapped in ``<mark>``."""
    text = p.text
    spans = sorted(
        (max(c.start, p.start) - p.start, min(c.end, p.end) - p.start)
        for c in citations
        if c.start is not None and c.end is not None and c.start < p.end and c.end > p.start
    )
    merged: list[tuple[int, int]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    lo, hi = _window(text, merged[0][0], merged[-1][1]) if merged else (0, len(text))
    out = ["…" if lo else ""]
    pos = lo
    for a, b in merged:
        out.append(html.escape(text[pos:a]))
        out.append(f"<mark>{html.escape(text[a:b])}</mark>")
        pos = b
    out.append(html.escape(text[pos:hi]))
    out.append("…" if hi < len(text) else "")
    return "".join(out).strip()


def _quote_block(ans: CitedAnswer, c: Citation) -> str:
    """A quote with its two badges and, when it is not the sentence itself, the sentence."""
    quote = " ".join(c.quote.split())
    sentence = ans.sentences[c.sentence] if c.sentence < len(ans.sentences) else ""
    claim = (
        f'<div class="slm-claim">cited for: “{html.escape(sentence)}”</div>'
        if sentence and sentence != quote
        else ""
    )
    copied = bool(c.supports) and sentence == quote
    return f'<div class="slm-quote">“{html.escape(quote)}”{_badges(c, copied=copied)}{claim}</div>'


def _source_head(number: int, p: Passage) -> str:
    where = html.escape(p.source_id + (f" · {p.section}" if p.section else ""))
    return (
        f'<div class="slm-head"><span class="slm-marker">[{number}]</span> '
        f'<b>{html.escape(p.title)}</b> <span class="slm-id">{where}</span></div>'
    )


def render_sources(ans: CitedAnswer | None) -> str:
    """The sources panel for ``ans``: cited passages with quotes, then the uncited ones."""
    if ans is None:
        return EMPTY_PANEL
    parts = ['<div class="slm-sources">']
    if ans.refused:
        why = str(ans.meta.get("refusal") or "the model found no answer in the sources")
        parts.append(f'<p class="slm-note slm-refusal">Refused: {html.escape(why)}.</p>')
        held = ans.meta.get("withheld")
        if held:
            parts.append(
                '<div class="slm-withheld"><h3>Withheld draft</h3>'
                f'<p class="slm-claim">{html.escape(held["text"])}</p>'
                + "".join(
                    f'<div class="slm-quote">[{c["marker"]}] '
                    f"“{html.escape(' '.join(c['quote'].split()))}”"
                    f"{_badges(Citation(**c))}</div>"
                    for c in held["citations"]
                )
                + "</div>"
            )
    if ans.cited_passages:
        parts.append("<h3>Cited sources</h3>")
    for number, p in ans.cited_passages.items():
        cites = ans.citations_for(number)
        parts.append(f'<div class="slm-source" data-marker="{number}">{_source_head(number, p)}')
        parts.extend(_quote_block(ans, c) for c in cites)
        parts.append(f'<div class="slm-context">{_highlighted(p, cites)}</div></div>')
    for c in ans.citations:
        if c.checked_against == "nothing":
            parts.append(
                f'<div class="slm-source"><span class="slm-marker">[{c.marker}]</span> names no '
                f"retrieved passage: “{html.escape(c.quote)}”{_badges(c)}</div>"
            )
    if ans.uncited_passages:
        parts.append("<h3>Retrieved, not cited</h3>")
        parts.extend(
            f'<details class="slm-uncited"><summary>[{n}] {html.escape(p.title)} '
            f'<span class="slm-id">{html.escape(p.source_id)}</span></summary>'
            f'<div class="slm-context">{html.escape(p.text.strip())}</div></details>'
            for n, p in ans.uncited_passages.items()
        )
    parts.append("</div>")
    return "".join(parts)


def render_chat(ans: CitedAnswer) -> str:
    """The answer as a chat message: sentences with markers, unsupported ones flagged,
    then what was checked, as two separate counts."""
    if ans.refused:
        why = ans.meta.get("refusal")
        held = (
            " The draft is shown, withheld, next to its sources." if "withheld" in ans.meta else ""
        )
        return ans.text + (f"\n\n*Refused: {why}.{held}*" if why else "")
    lines = []
    for i, sentence in enumerate(ans.sentences):
        markers = "".join(
            f"[{m}]" for m in dict.fromkeys(c.marker for c in ans.citations_for_sentence(i))
        )
        flag = ""
        if i < len(ans.sentence_supported) and not ans.sentence_supported[i]:
            flag = " ⚠️ *not supported by its quote*"
        lines.append(f"{sentence} {markers}".strip() + flag)
    verbatim = sum(c.verified for c in ans.citations)
    note = f"{verbatim} of {len(ans.citations)} quotes verbatim in their sources"
    if ans.sentence_supported:
        note += (
            f"; {sum(ans.sentence_supported)} of {len(ans.sentence_supported)} sentences "
            "supported by their quotes"
        )
    if ans.mode == "grounded":
        note = "Grounded answer, sentences copied from the sources. " + note
    if not ans.complete:
        note += "; the answer was cut off"
    return "\n".join(lines) + f"\n\n*{note}.*"
