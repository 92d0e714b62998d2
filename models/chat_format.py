"""Turning OpenAI-format chat messages into a prompt for models without tool support.

Small models' chat templates (SmolLM2's among them) know only ``role`` and ``content``.
Agents keep OpenAI messages with ``tool_calls`` and ``tool`` results; before rendering we
write each tool call as the JSON the model itself emits under the call schema, so the
history the model reads looks exactly like what it writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jinja2
import jinja2.sandbox

from slmkit.models.base import Message

__all__ = ["decode_arguments", "render_template", "to_text_messages", "tool_call_text"]


def decode_arguments(args: Any) -> Any:
    """Tool-call arguments as data: OpenAI sends them as a JSON string, others as objects.

    A string that is not JSON is returned unchanged, so the caller's validation can
    report it instead of this function guessing.
    """
    if isinstance(args, str):
        try:
            return json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            return args
    return args


def tool_call_text(tool_calls: Sequence[dict[str, Any]]) -> str:
    """The JSON text of OpenAI ``tool_calls`` as our call schema writes them."""
    calls = []
    for tc in tool_calls:
        fn = tc.get("function", tc)
        calls.append({"name": fn.get("name"), "arguments": decode_arguments(fn.get("arguments"))})
    payload: Any = calls[0] if len(calls) == 1 else calls
    return json.dumps(payload, ensure_ascii=False)


def to_text_messages(messages: Sequence[Message]) -> list[dict[str, str]]:
    """Role/content-only messages: assistant tool calls become their JSON text."""
    out: list[dict[str, str]] = []
    for m in messages:
        content = m.get("content")
        if m.get("role") == "assistant" and not content and m.get("tool_calls"):
            content = tool_call_text(m["tool_calls"])
        if isinstance(content, list):  # OpenAI content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        out.append({"role": str(m["role"]), "content": "" if content is None else str(content)})
    return out


_ENV = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)


def render_template(
    template: str,
    messages: Sequence[Message],
    *,
    bos_token: str = "",
    eos_token: str = "",
) -> str:
    """Render a Hugging Face-style Jinja chat template with the generation prompt."""

    def raise_exception(message: str) -> None:
        raise jinja2.TemplateError(message)

    return _ENV.from_string(template).render(
        messages=to_text_messages(messages),
        add_generation_prompt=True,
        bos_token=bos_token,
        eos_token=eos_token,
        raise_exception=raise_exception,
    )
