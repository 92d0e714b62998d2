"""Prompts: text files shipped as package data, rendered one way.

Every prompt slmkit sends is a file in the ``prompts/`` folder of the package that uses
it (``slmkit.agents`` -> ``agents/prompts/tool_agent.md``), and every one is rendered
here, by the same Jinja environment::

    render_prompt("slmkit.agents", "rag_reformulate.md", question="Who wrote Dune?")

* **Sandboxed** (``ImmutableSandboxedEnvironment``): a template can read the values it is
  given, not reach through them into Python objects or change them.
* **StrictUndefined**: a variable the caller did not pass is a :class:`PromptError`,
  never an empty string or a literal ``{x}`` left in the prompt.
* **Values are text**: a value is inserted once, as it is; a passage or a user message
  that holds ``{y}`` or ``{{ y }}`` reaches the model unchanged, never rendered again
  (chained ``str.replace`` got both wrong).

The rendered text is returned exactly as the template lays it out (a file's final
newline included); block tags (``{% if %}``) take their own line's newline with them.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import jinja2
import jinja2.sandbox

from slmkit.models.errors import PromptError

__all__ = ["load_prompt", "render_prompt", "render_template"]

_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    undefined=jinja2.StrictUndefined,
    autoescape=False,
)


@cache
def load_prompt(package: str, name: str) -> str:
    """The template text of ``prompts/<name>`` shipped inside ``package``."""
    try:
        return (resources.files(package) / "prompts" / name).read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError) as exc:
        raise PromptError(
            f"no prompt {name!r} in {package}: {exc}",
            hint=f"prompts live in {package.replace('.', '/')}/prompts/ and are package data; "
            "reinstall (make install) if the file exists",
        ) from exc


def render_template(template: str, /, **variables: Any) -> str:
    """Render Jinja ``template`` text with ``variables`` (sandboxed, nothing may be unset)."""
    try:
        return _ENV.from_string(template).render(**variables)
    except jinja2.UndefinedError as exc:
        raise PromptError(
            f"a prompt needs a variable that was not given: {exc.message}",
            hint=f"pass every variable the template uses (given: {sorted(variables) or 'none'})",
        ) from exc
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(
            f"a prompt template is not valid Jinja (line {exc.lineno}): {exc.message}",
            hint="variables are written {{ name }}; a literal {{ needs {{ '{{' }}",
        ) from exc


def render_prompt(package: str, name: str, /, **variables: Any) -> str:
    """Render the prompt file ``prompts/<name>`` of ``package`` with ``variables``."""
    return render_template(load_prompt(package, name), **variables)
