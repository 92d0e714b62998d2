"""One CLI vocabulary: every ``agentctl`` command spells a concept the same way.

Walks the real command tree (typer -> click) and checks every visible option:

* a concept has one spelling (``--limit`` for "the first N tasks", never ``--n`` in one
  command and ``--limit`` in another); old spellings live on only as hidden aliases;
* a short flag means one long option everywhere, and a long option that has a short flag
  somewhere has it everywhere;
* an option name either always takes a value or is always an on/off flag.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from slmkit.apps.cli import app

CONCEPTS: dict[str, tuple[set[str], set[str]]] = {
    # concept: (the spellings used, spellings that must not appear as visible options)
    "the first N tasks": (
        {"--limit", "--train-limit", "--eval-limit"},
        {"--n", "--train-n", "--eval-n", "--num-tasks", "--max-tasks", "--tasks-limit"},
    ),
    "concurrent episodes": (
        {"--workers", "--eval-workers"},
        {"--concurrency", "--jobs", "--num-workers", "--parallel"},
    ),
    "where results go": ({"--out"}, {"--output", "--output-file", "--out-file", "--dest"}),
    "a model spec": ({"--model"}, {"--model-spec", "--spec", "--llm"}),
    "an environment": ({"--env"}, {"--environment", "--env-name"}),
    "environment options": ({"--env-opt"}, {"--env-option", "--env-options", "--env-args"}),
    "a task split": ({"--split"}, {"--task-split", "--data-split", "--subset"}),
    "a config file": ({"--config"}, {"--config-file", "--cfg", "--yaml"}),
    "tokens one generation may use": (
        {"--max-tokens"},
        {"--max-output-tokens", "--max-completion-length", "--max-new-tokens"},
    ),
    "how the first thought starts": ({"--first-thought-prefix"}, {"--first-thought"}),
    "how many items to generate": ({"--count"}, {"--num", "--number"}),
    "how an answer is written": ({"--mode"}, {"--answer-mode", "--grounded", "--free"}),
}


def _commands() -> Iterator[tuple[str, Any]]:
    """``(path, click command)`` for every command and group of ``agentctl``."""

    def walk(command: Any, path: str) -> Iterator[tuple[str, Any]]:
        yield path, command
        for name, sub in (getattr(command, "commands", None) or {}).items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(typer.main.get_command(app), "agentctl")


def _options() -> list[tuple[str, Any]]:
    """``(command path, click option)`` for every visible option (``--help`` aside)."""
    return [
        (path, param)
        for path, command in _commands()
        for param in command.params
        if getattr(param, "param_type_name", "") == "option"
        and not param.hidden
        and "--help" not in param.opts
        and not param.name.endswith("_completion")
    ]


def test_the_walk_sees_every_command() -> None:
    paths = {path for path, _ in _commands()}
    for name in ("collect", "eval", "distill", "rl", "simulate amplify", "simulate fidelity",
                 "index", "ask", "demo", "run", "data fetch"):  # fmt: skip
        assert f"agentctl {name}" in paths, sorted(paths)


@pytest.mark.parametrize("concept", sorted(CONCEPTS))
def test_a_concept_has_one_spelling(concept: str) -> None:
    used, banned = CONCEPTS[concept]
    visible = {(path, name) for path, opt in _options() for name in opt.opts + opt.secondary_opts}
    wrong = sorted((path, name) for path, name in visible if name in banned)
    assert not wrong, f"{concept}: spell it {' / '.join(sorted(used))}, not {wrong}"


def test_short_flags_mean_one_option_everywhere() -> None:
    long_of: dict[str, set[str]] = defaultdict(set)
    shorts_of: dict[str, set[frozenset[str]]] = defaultdict(set)
    for _, opt in _options():
        longs = [o for o in opt.opts if o.startswith("--")]
        shorts = frozenset(o for o in opt.opts if not o.startswith("--"))
        for short in shorts:
            long_of[short].update(longs)
        for name in longs:
            shorts_of[name].add(shorts)
    assert {s: ls for s, ls in long_of.items() if len(ls) > 1} == {}
    mixed = {name: sorted(map(sorted, s)) for name, s in shorts_of.items() if len(s) > 1}
    assert mixed == {}, "a long option has its short flag in some commands only"


def test_an_option_name_always_takes_a_value_or_never() -> None:
    kinds: dict[str, set[bool]] = defaultdict(set)
    for _, opt in _options():
        for name in opt.opts:
            kinds[name].add(bool(opt.is_flag))
    assert {name for name, k in kinds.items() if len(k) > 1} == set()


def _aliases() -> list[tuple[str, str, str]]:
    """``(command, old spelling, new spelling)`` of every hidden alias."""
    out = []
    for path, command in _commands():
        normalize = (command.context_settings or {}).get("token_normalize_func")
        for old in getattr(normalize, "aliases", {}):
            out.append((path, f"--{old}", f"--{normalize(old)}"))
    return out


def test_old_spellings_are_hidden_aliases_of_the_new_ones() -> None:
    aliases = _aliases()
    assert ("agentctl collect", "--n", "--limit") in aliases
    for path, old, new in aliases:
        command = dict(_commands())[path]
        names = {n for p in command.params for n in getattr(p, "opts", [])}
        assert new in names and old not in names, (path, old, new)


def test_an_old_spelling_still_works() -> None:
    """``collect --n 1`` parses as ``--limit 1`` and reaches the environment lookup."""
    args = ["collect", "--env", "nosuch", "--agent", "gold", "--n", "1", "--out", "x.jsonl"]
    result = CliRunner().invoke(app, args)
    assert "No such option" not in result.output
    assert "unknown environment 'nosuch'" in str(result.exception), result.output
