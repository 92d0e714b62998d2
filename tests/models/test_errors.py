"""The exception tree drawn in ``models/errors.py`` is the tree of the real classes."""

from __future__ import annotations

import importlib
import re

from slmkit.models import SlmkitError
from slmkit.models import errors as errors_module

PACKAGES = ["models", "tools", "retrieval", "agents", "simulators", "training"]


def _drawn() -> dict[str, str]:
    """Class -> parent, read from the drawing (a name's parent is the nearest one left of it)."""
    doc = errors_module.__doc__ or ""
    lines = [line for line in doc.splitlines() if re.match(r"\s+(SlmkitError$|[│ ]*[├└]── )", line)]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in lines:
        match = re.search(r"[A-Z]\w+", line)
        assert match, line
        depth, name = match.start(), match.group()
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def _real() -> dict[str, str]:
    for package in PACKAGES:  # every package's errors module, so all subclasses exist
        importlib.import_module(f"slmkit.{package}.errors")
    parents: dict[str, str] = {}
    todo = [SlmkitError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("slmkit."):
                parents[sub.__name__] = cls.__name__
                todo.append(sub)
    return parents


def test_the_drawing_matches_the_classes() -> None:
    assert _drawn() == _real()


def test_every_package_error_carries_its_hint() -> None:
    _real()
    for cls in _all_subclasses():
        if not cls.__module__.startswith("slmkit."):
            continue
        assert str(cls("it broke", hint="do this")) == "it broke\n  hint: do this"


def _all_subclasses() -> list[type[SlmkitError]]:
    found: list[type[SlmkitError]] = []
    todo = [SlmkitError]
    while todo:
        cls = todo.pop()
        found += cls.__subclasses__()
        todo += cls.__subclasses__()
    return found
