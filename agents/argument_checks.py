"""Do a call's arguments come from the task? Cheap checks for values a small model made up.

The grammar makes every call well-formed; it cannot see where the values came from. On
the everyday tasks of ``benchmarks/agent_tasks.py`` (dev seed) the 135M model's wrong
runs were mostly one of four calls, each schema-valid:

* **a pure tool fed its own result**: ``calculator("87*97")`` returns ``8439``, then
  ``calculator("8439*97")``, ``calculator("818583*97")``, ... until ``max_steps``;
* **a number from nowhere**: ``calculator("100000000000.00")`` for "How much do 8 lemons
  cost?", a number neither the task nor any observation holds;
* **a value copied from the tool's description**: ``get_price("apple")`` (the docstring's
  "e.g. apple") for "What is the price of one orange?";
* **an enum choice the task does not give**: ``convert_units(1.9, "km", "m")`` for "How
  many centimeters are in 1.9 meters?" (the model takes the schema's first units whatever
  the task says), and, held to the units the task names, ``convert_units(59, "ml", "ml")``
  for "How many milliliters are in 59 liters?".

:func:`check_call` finds these and says how to decode the step again
(:class:`~slmkit.agents.actions.Pins`): without the tool, with numeric arguments held to
the numbers the task and the observations state, with the copied argument held to the
task's words, or with the enum held to the choices the task names (a choice is named by
its word, a plural of it, a word sharing its beginning, or a word it abbreviates: ``cm``
for "centimeters"), and an enum argument that describes a number argument ("from_unit:
the unit of the value") to the choice the task writes right after that number ("59
liters"). It never rejects a value the task states, but in that last rule (``ml`` is
named, yet not as the value's unit). Small integers (up to 31: days, counts, "top 5")
and powers of ten count as known: tools' arguments use them as common
settings without the task spelling them out (BFCL's ``simple`` category does); so does a
percentage of the task as a fraction (``5%``: 0.05). A described value that shares a word
with the task (``"Boston, MA"`` for "Boston, Massachusetts") follows the description's
format and is not a copy. (Both were seen on BFCL's held-out items, where the first
version of these checks cost 3 of 120.)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.agents.actions import Pins
from slmkit.agents.grounding import numbers_in
from slmkit.tools import NUMBER_REGEX, Tool, ToolCall

__all__ = ["Observed", "Rejection", "check_call"]

_COMMON_INTEGERS = 31
_COMMON_POWERS = frozenset(10.0**k for k in range(7))
_NUMBER_TEXT = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_WORD = re.compile(r"[^\W\d_][\w'-]*")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "can",
        "could",
        "do",
        "does",
        "for",
        "from",
        "get",
        "give",
        "how",
        "i",
        "in",
        "is",
        "it",
        "many",
        "me",
        "much",
        "my",
        "of",
        "on",
        "one",
        "or",
        "please",
        "should",
        "tell",
        "than",
        "that",
        "the",
        "their",
        "there",
        "this",
        "to",
        "was",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


@dataclass(frozen=True)
class Observed:
    """One earlier successful call and what it returned."""

    tool: str
    observation: str


@dataclass(frozen=True)
class Rejection:
    """Why a call was rejected (short, for the step's candidate log) and how to decode again."""

    reason: str
    pins: Pins


def check_call(
    call: ToolCall, tool: Tool, task: str, observed: Sequence[Observed], *, pure: bool
) -> Rejection | None:
    """The first of the four checks (module docs) that ``call`` fails, or None.

    ``pure``: whether the tool may be judged by the first check: calling a tool that
    has side effects on its own result may be meant (the next page of a listing)."""
    task_numbers = set(_numbers(task)) | _percent_fractions(task)
    stated = _numbers(call.arguments)
    if pure:
        own = {x for o in observed if o.tool == tool.name for x in _numbers(o.observation)}
        if any(x in own and x not in task_numbers for x in stated):
            return Rejection("fed its own result", Pins(exclude=frozenset({tool.name})))
    # Numbers the tool's own description states (defaults, limits) are known too.
    known = task_numbers | set(_numbers([*(o.observation for o in observed), _described(tool)]))
    made_up = {x for x in stated if x not in known and not _common(x)}
    if made_up:
        pins = _number_pins(call, tool, task, observed, made_up)
        return Rejection("a number in neither the task nor an observation", pins)
    copied = _copied_from_description(call, tool, task, observed)
    words = [w for w in _task_words(task) if w.lower() not in copied.values()]
    if copied and words:
        pinned = {name: {"type": "string", "enum": words} for name in copied}
        pins = Pins(arguments={tool.name: pinned})
        return Rejection("a value copied from the tool's description", pins)
    text = " ".join([task, *(o.observation for o in observed)])
    unnamed = _unnamed_choices(call, tool, text) | _quantity_units(call, tool, task)
    if unnamed:
        spec = tool.parameters.get("properties", {})
        pinned = {name: {**spec[name], "enum": named} for name, named in unnamed.items()}
        return Rejection(
            "an enum choice the task does not give", Pins(arguments={tool.name: pinned})
        )
    return None


def _unnamed_choices(call: ToolCall, tool: Tool, text: str) -> dict[str, list[str]]:
    """String-enum arguments whose value ``text`` does not name while it names other
    choices: those choices (in the enum's order), by argument name. Where the text names
    no choice ("°C" for ``celsius``) nothing is said."""
    words = [w.lower() for w in _WORD.findall(text) if w.lower() not in _STOPWORDS]
    unnamed = {}
    for name, value, choices in _enum_arguments(call, tool):
        named = _named(choices, words, text.lower())
        if named and value not in named:
            unnamed[name] = named
    return unnamed


def _quantity_units(call: ToolCall, tool: Tool, task: str) -> dict[str, list[str]]:
    """String-enum arguments that describe a number argument ("from_unit: the unit of the
    value") while the task writes that number with a choice of theirs after it ("59
    liters"): that choice, by argument name, where the call took another."""
    properties = tool.parameters.get("properties", {})
    # The words the task writes right after each number ("59 liters": 59.0, "liters").
    after = [(float(n), w.lower()) for n, w in _NUMBER_WORD.findall(task.replace(",", ""))]
    held = {}
    for name, value, choices in _enum_arguments(call, tool):
        described = {w.lower() for w in _WORD.findall(str(properties[name].get("description", "")))}
        for other, number in call.arguments.items():
            if other.lower() not in described or isinstance(number, bool):
                continue
            if not isinstance(number, int | float):
                continue
            for word in (w for n, w in after if n == number):
                named = _named(choices, [word], word)
                if len(named) == 1 and value != named[0]:
                    held[name] = named
    return held


_NUMBER_WORD = re.compile(rf"(?<![\w.])({_NUMBER_TEXT.pattern})\s+([^\W\d_]+)")
"""A number and the word written right after it ("59 liters")."""


def _enum_arguments(call: ToolCall, tool: Tool) -> Iterator[tuple[str, str, list[str]]]:
    """The call's string arguments whose schema is an enum of strings, with its choices."""
    properties = tool.parameters.get("properties", {})
    for name, value in call.arguments.items():
        choices = properties.get(name, {}).get("enum")
        if isinstance(value, str) and _strings(choices):
            yield name, value, choices


def _named(choices: Sequence[str], words: Sequence[str], text: str) -> list[str]:
    """The choices ``text`` names: written out as a phrase, or the best match of one of
    its ``words`` (a word is claimed by one choice: "milliliters" names ``ml``, not ``m``)."""
    named = {c for c in choices if _phrase(c).search(text)}
    for word in words:
        scores = {c: _match(c.lower(), word) for c in choices}
        best = max(scores.values())
        if best > 0:
            named |= {c for c, score in scores.items() if score == best}
    return [c for c in choices if c in named]


def _strings(choices: Any) -> bool:
    """Is ``choices`` an enum of strings (the only enums a task names in words)?"""
    return isinstance(choices, list) and bool(choices) and all(isinstance(c, str) for c in choices)


def _phrase(choice: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in re.split(r"[\s_-]+", choice.lower()) if w]
    return (
        re.compile(r"(?<!\w)" + r"[\s_-]+".join(words) + r"s?(?!\w)")
        if words
        else re.compile(r"(?!)")
    )


def _match(choice: str, word: str) -> float:
    """How well ``word`` names ``choice``: 3 the word itself or its plural, 2 one of the
    two begins the other, but for its last letter ("desc": "descending", "annually":
    "annual", "sine": "sinusoidal"), between 1 and 2 an abbreviation ("cm": "centimeters";
    a longer one wins, then the one whose letters come earlier: "kilograms" is ``kg``, not
    ``km``), 0 none."""
    if word in (choice, choice + "s", choice + "es") or choice == word + "s":
        return 3.0
    shortest = min(len(choice), len(word))
    shared = next((i for i in range(shortest) if choice[i] != word[i]), shortest)
    if shared >= max(3, shortest - 1):
        return 2.0
    if not (choice.isalpha() and len(choice) <= 3 and word[0] == choice[0]):
        return 0.0
    positions, start = [], 0
    for letter in choice:
        start = word.find(letter, start) + 1
        if not start:
            return 0.0
        positions.append(start)
    return 1.0 + len(choice) / 10 - sum(positions) / 1000


_PERCENT = re.compile(r"(\d+(?:\.\d+)?) ?(?:%|percent\b)")


def _percent_fractions(task: str) -> set[float]:
    """``5%`` in the task makes 0.05 a known number: tools take rates as fractions."""
    return {float(m) / 100 for m in _PERCENT.findall(task.replace(",", ""))}


def _common(x: float) -> bool:
    return (x == int(x) and x <= _COMMON_INTEGERS) or x in _COMMON_POWERS


def _numbers(value: Any) -> list[float]:
    """Every number in an argument value (numbers, and numbers written in strings)."""
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        # Signs are ignored: "2023-01-05" is not three numbers the task must state.
        return [abs(float(value))]
    if isinstance(value, str):
        return [abs(x) for x in numbers_in(value)]
    if isinstance(value, Mapping):
        return [x for v in value.values() for x in _numbers(v)]
    if isinstance(value, list | tuple):
        return [x for v in value for x in _numbers(v)]
    return []


def _number_pins(
    call: ToolCall, tool: Tool, task: str, observed: Sequence[Observed], made_up: set[float]
) -> Pins:
    """Hold each argument holding a made-up number to the numbers the run has seen.

    A number argument gets an ``enum`` of them; a string (an expression) a pattern in
    which every number is one of them, written as they were. Where that cannot be said
    (no number seen at all, a string pattern of another shape) the tool is left out.
    """
    texts = _number_texts([task, *(o.observation for o in observed)])
    if not texts:
        return Pins(exclude=frozenset({tool.name}))
    properties = tool.parameters.get("properties", {})
    pinned: dict[str, Mapping[str, Any]] = {}
    for name, value in call.arguments.items():
        if not made_up & set(_numbers(value)):
            continue
        spec = dict(properties.get(name, {}))
        kind = spec.get("type")
        if kind in ("number", "integer") and not isinstance(value, str):
            # The numbers as written: an enum of 87.0 would make the model write "87.0".
            values = [float(t) if "." in t else int(t) for t in texts]
            if kind == "integer":
                values = [int(v) for v in values if v == int(v)]
            if values:
                pinned[name] = {**spec, "enum": values}
                continue
        elif kind == "string" or isinstance(value, str):
            pattern = _numbers_only(spec.get("pattern"), texts)
            if pattern is not None:
                pinned[name] = {**spec, "type": "string", "pattern": pattern}
                continue
        return Pins(exclude=frozenset({tool.name}))
    return Pins(arguments={tool.name: pinned}) if pinned else Pins(exclude=frozenset({tool.name}))


def _numbers_only(pattern: str | None, texts: Sequence[str]) -> str | None:
    """A string pattern whose numbers can only be ``texts``; None when there is none.

    A free-text string: any text in which every run of digits is one of them. A string
    with its own pattern keeps it, with the pattern's number (:data:`NUMBER_REGEX`, as the
    calculator spells it) swapped for them; another pattern cannot be narrowed.
    """
    numbers = "(?:" + "|".join(re.escape(t) for t in sorted(texts, key=len, reverse=True)) + ")"
    if pattern is None:
        return f"^(?:[^0-9]|{numbers})*$"
    if NUMBER_REGEX in pattern:
        return pattern.replace(NUMBER_REGEX, numbers)
    return None


def _number_texts(texts: Iterable[str]) -> list[str]:
    """The numbers written in ``texts``, as written, once each."""
    return list(dict.fromkeys(m for t in texts for m in _NUMBER_TEXT.findall(t.replace(",", ""))))


def _described(tool: Tool) -> str:
    """The tool's description and its parameters' descriptions, as the model read them."""
    properties = tool.parameters.get("properties", {})
    return " ".join(
        [tool.description, *(str(p.get("description", "")) for p in properties.values())]
    )


def _copied_from_description(
    call: ToolCall, tool: Tool, task: str, observed: Sequence[Observed]
) -> dict[str, str]:
    """Required free-text string arguments whose value (lower-cased, returned by argument
    name) the tool's description holds and the task and observations do not. Optional ones
    are left alone: a default the description names is a fine value for them."""
    required = set(tool.parameters.get("required", ()))
    properties = tool.parameters.get("properties", {})
    described = _described(tool).lower()
    context = " ".join([task, *(o.observation for o in observed)]).lower()
    context_words = set(_WORD.findall(context))
    copied = {}
    for name, value in call.arguments.items():
        spec = properties.get(name, {})
        if name not in required or not isinstance(value, str) or not value.strip():
            continue
        if {"enum", "const", "pattern", "format"} & spec.keys():
            continue
        needle = re.compile(rf"(?<!\w){re.escape(value.strip().lower())}(?!\w)")
        # A value sharing a content word with the task ("Boston, MA" for "Boston,
        # Massachusetts") follows the description's format, which is what descriptions
        # are for; sharing "the" with it says nothing.
        words = {w.lower() for w in _WORD.findall(value)} - _STOPWORDS
        shares = bool(words & context_words)
        if needle.search(described) and not needle.search(context) and not shares:
            copied[name] = value.strip().lower()
    return copied


def _task_words(task: str) -> list[str]:
    """The task's content words, once each, in order: what a copied value is replaced by."""
    words = (w for w in _WORD.findall(task) if w.lower() not in _STOPWORDS and len(w) > 1)
    return list(dict.fromkeys(words))
