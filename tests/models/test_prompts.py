"""The one prompt renderer: strict about variables, literal about values, used by every prompt."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import jinja2.meta
import pytest

from slmkit.models import PromptError, load_prompt, render_prompt, render_template

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["models", "tools", "retrieval", "agents", "simulators", "training", "apps"]


def _prompt_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("prompts/*") if p.is_file())


def _package_of(path: Path) -> str:
    return "slmkit." + ".".join(path.parent.parent.relative_to(ROOT).parts)


def test_a_missing_variable_raises_and_says_which() -> None:
    with pytest.raises(PromptError, match="'question' is undefined") as err:
        render_prompt("slmkit.agents", "rag_reformulate.md")
    assert err.value.hint is not None and "none" in err.value.hint
    with pytest.raises(PromptError, match="'b' is undefined"):
        render_template("{{ a }} and {{ b }}", a="x")


def test_a_value_holding_braces_is_inserted_as_it_is() -> None:
    tricky = "what does {question} mean, or {{ question }}, or {% if x %}?"
    out = render_prompt("slmkit.agents", "rag_reformulate.md", question=tricky)
    assert out.endswith(f"Question: {tricky}\n")
    # the old chained str.replace rewrote a value that held the next placeholder
    two = render_prompt(
        "slmkit.retrieval", "cited_answer_user.md", passages="{question}", question="Q"
    )
    assert "Sources:\n{question}\n" in two and two.rstrip().endswith("Question: Q")


def test_the_sandbox_refuses_reaching_into_objects() -> None:
    with pytest.raises(jinja2.exceptions.SecurityError):
        render_template("{{ x.__class__.__subclasses__() }}", x=1)


def test_a_missing_file_or_bad_template_is_a_prompt_error() -> None:
    with pytest.raises(PromptError, match=r"no prompt 'nope\.md'") as err:
        load_prompt("slmkit.agents", "nope.md")
    assert err.value.hint and "agents/prompts" in err.value.hint
    with pytest.raises(PromptError, match="not valid Jinja"):
        render_template("{{ unclosed")


@pytest.mark.parametrize("path", _prompt_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_prompt_file_renders_and_has_no_old_placeholders(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert not re.search(r"(?<!\{)\{[a-z_]+\}(?!\})", text), "a {name} placeholder left over"
    names = jinja2.meta.find_undeclared_variables(jinja2.Environment().parse(text))
    values = {name: f"<{name}>" for name in names}
    out = render_prompt(_package_of(path), path.name, **values)
    for name in names - {"parallel", "allow_no_call", "no_call"}:  # flags, and a branch
        assert f"<{name}>" in out, name


def test_every_prompt_file_is_used_and_nothing_renders_around_the_renderer() -> None:
    sources = {
        p: p.read_text(encoding="utf-8") for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
    }
    code = "\n".join(sources.values())
    unused = [p.name for p in _prompt_files() if f'"{p.name}"' not in code]
    assert not unused, f"prompt files no module renders: {unused}"
    chained = [str(p.relative_to(ROOT)) for p, s in sources.items() if '.replace("{' in s]
    assert not chained, f"fill prompts with render_prompt, not str.replace: {chained}"
