"""Is a final answer grounded in what the tools returned? A cheap numeric check.

A grammar makes a small model's final answer well-formed, not true: after the calculator
returned ``117`` the 135M model may still answer ``".18"``, or a number it made up. When
a run's answer comes after tool results, :func:`contradiction` compares the numbers the
answer states with the numbers the observations hold: when the last observation holds
numbers, an answer whose last number (where answers put their result: "12 times 13 is
156"; a number restating the task, as in "5.4 is the cost of 9 pears", is not the result)
is in no observation contradicts it, and so does an answer with no number at all
(the 135M model answers ``"{{result}}"`` or ``","`` after the calculator returned 81).
The loop agents flag such an answer on its action event (``StepEvent.flag``), and by
default ask the model once to answer again from the observation
(``AgentConfig.grounding``).

Deliberately narrow: words are not compared (a paraphrase is fine), and an answer after
an observation without numbers (a text, an error) is not judged. It catches the failure
that matters for tool answers (a number that did not come from the tool) without a model
in the loop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

__all__ = ["contradiction", "numbers_in"]

_NUMBER = re.compile(r"-?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?")


def numbers_in(text: str) -> list[float]:
    """The numbers written in ``text`` (thousands separators ignored: ``1,554`` is 1554)."""
    return [float(x) for x in _written(text)]


def _written(text: str) -> list[str]:
    return _NUMBER.findall(re.sub(r"(?<=\d),(?=\d{3}\b)", "", text))


def _states(answer: str, observed: str) -> bool:
    """Does the number written ``answer`` state the number written ``observed``? The same
    value (to 1e-9: ``0.3`` states ``0.30000000000000004``), written with no more decimal
    places than ``observed`` has: a model running on inside a number it copies
    (``8439.000000000001000...`` after ``8439``) is not stating it."""
    a, o = Decimal(answer).normalize(), Decimal(observed).normalize()
    if -int(a.as_tuple().exponent) > max(-int(o.as_tuple().exponent), 0):
        return False
    return abs(a - o) <= Decimal("1e-9") * max(Decimal(1), abs(a), abs(o))


def contradiction(answer: str, observations: Sequence[str], task: str = "") -> str | None:
    """Why ``answer`` contradicts the last of ``observations``, or None when it does not.

    None as well when there is nothing to compare: no observation, or a last observation
    without numbers (an error message, a text). Numbers that restate ``task`` are not the
    answer's result: "5.4, the total cost of 9 pears" answers "How much do 9 pears cost?"
    with 5.4 (the calculator's), not with 9; an answer stating nothing but the task's
    numbers is judged by its last.
    """
    if not observations:
        return None
    last = observations[-1]
    seen = numbers_in(last)
    if not seen:
        return None
    shown = last if len(last) <= 80 else last[:77] + "..."
    stated = _written(answer)
    if not stated:
        return (
            f"the answer {answer.strip()[:80]!r} states no number, but the tools returned "
            f"one (the last observation: {shown!r})"
        )
    given = _written(task)
    result = next(
        (x for x in reversed(stated) if not any(_states(x, g) for g in given)), stated[-1]
    )
    known = [x for text in observations for x in _written(text)]
    if any(_states(result, k) for k in known):
        return None
    return (
        f"the answer {answer.strip()[:80]!r} does not state a number the tools returned "
        f"(the last observation: {shown!r})"
    )
