"""Trajectories -> training conversations that are exactly what the agent reads and writes.

A :class:`~slmkit.agents.Trajectory` stores the OpenAI form of a run (assistant
``tool_calls``, ``role: tool`` results). The model never saw that form: the
:class:`~slmkit.agents.ToolAgent` shows it its earlier actions as compact JSON and tool
results as ``Observation: ...`` user turns, and decodes each action as JSON under a
grammar. Training on the OpenAI form would teach the student a format it never uses,
so :func:`agent_conversation` renders each trajectory through the agent's own view
(the same ``ToolAgent`` code, not a copy) and writes every assistant turn as the JSON
action the model emits.

The loss covers the agent's tokens only: :func:`training_chat_template` picks a chat
template with ``{% generation %}`` blocks around the assistant turns (the model's own
if it has them, TRL's patched one for the families TRL knows, else slmkit's ChatML), and
:func:`check_rendering` verifies on real rows that, outside those blocks, the template
renders the conversation byte for byte as the model's inference template does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

from slmkit.agents import AgentConfig, ToolAgent, Trajectory, action_text
from slmkit.models import ChatModel, Request, RowResult, to_text_messages
from slmkit.tools import Tool
from slmkit.training.errors import TrainingError
from slmkit.training.student import student_system_prompt

__all__ = [
    "Conversion",
    "agent_conversation",
    "assistant_token_mask",
    "check_rendering",
    "to_rows",
    "training_chat_template",
]

_AGENTS = {None, "tool", "gold"}
"""Trajectory kinds rendered through the ToolAgent's view."""


class _RenderOnly(ChatModel):
    """A model that only lends the agent a name: rendering never generates."""

    name = "render-only"
    backend = "none"

    def _generate_batch(self, requests: list[Request]) -> list[RowResult]:
        raise TrainingError("internal: the rendering agent cannot generate", hint="report this")


def _flags(traj: Trajectory) -> tuple[bool, bool, bool]:
    """(parallel_calls, thought on every step, thought on the first step) of ``traj``'s agent.

    Read from ``meta`` when the agent recorded them, else from its system prompt, which
    spells out the action shape (``"tool_calls"`` for parallel calls, ``"thought"``). A
    first-thought prefix (``meta["first_thought"]``) puts a thought on step 1 only.
    """
    system = next((str(m.get("content") or "") for m in traj.messages if m["role"] == "system"), "")
    parallel = traj.meta.get("parallel_calls")
    if parallel is None:
        many = any(len(m.get("tool_calls") or ()) > 1 for m in traj.messages)
        parallel = many or '"tool_calls"' in system
    every = traj.meta.get("thought")
    if every is None:
        every = '"thought"' in system
    first = bool(every) or traj.meta.get("first_thought") is not None
    return bool(parallel), bool(every), first


def _viewer(traj: Trajectory, parallel: bool, thought: bool) -> ToolAgent:
    # Step-1-only thoughts need no flag: the view writes any recorded thought.
    tools = [Tool.from_openai(t) for t in traj.tools]
    config = AgentConfig(parallel_calls=parallel, thought=thought, checkpoint="none")
    return ToolAgent(_RenderOnly(), tools, config)


def agent_conversation(
    traj: Trajectory, *, system_prompt: str = "agent", invalid: Literal["raise", "keep"] = "raise"
) -> list[dict[str, str]]:
    """The conversation the agent's model read and wrote in ``traj``, as role/content turns.

    Args:
        traj: a ToolAgent (or gold) trajectory.
        system_prompt: ``"agent"`` keeps the agent's prompt; ``"short"`` or a header text
            replace its instructions (:func:`~slmkit.training.student.student_system_prompt`).
        invalid: what an output that did not parse becomes: an error (SFT must not imitate
            it), or ``"keep"``: its raw text, as the model wrote it (RL scores what the
            policy really did, broken actions included).

    Raises:
        TrainingError: a trajectory of another agent kind, or (``invalid="raise"``) one
            with an output that did not parse (an assistant turn that is neither a call
            nor the last turn: the agent answered it with an error message).
    """
    kind = traj.meta.get("agent")
    if kind not in _AGENTS:
        raise TrainingError(
            f"trajectory {traj.id} comes from a {kind!r} agent; only tool-agent "
            "trajectories can be rendered for training",
            hint="collect with --agent tool (or gold)",
        )
    parallel, thought, first_thought = _flags(traj)
    viewer = _viewer(traj, parallel, thought)
    messages = list(traj.messages)
    if not messages or messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": viewer._system_prompt()})
    view = viewer._model_view(messages)
    last = len(messages) - 1
    first_action = next((i for i, m in enumerate(messages) if m["role"] == "assistant"), -1)
    for i, m in enumerate(messages):
        if m["role"] != "assistant" or m.get("tool_calls"):
            continue
        if i != last:
            if invalid == "keep":
                continue  # the view holds the raw text
            raise TrainingError(
                f"trajectory {traj.id} has an unparsable output at message {i}",
                hint="drop runs with parse errors before training (the filter stage does)",
            )
        # The model wrote its final answer as a JSON action; the trajectory keeps the
        # answer text, led by the thought and a blank line when it had one (a thought that
        # itself holds a blank line is split there: the rest is read as the answer).
        said: str | None = None
        answer = str(m.get("content") or "")
        if thought or (first_thought and i == first_action):
            lead, blank, rest = answer.partition("\n\n")
            said, answer = (lead, rest) if blank else ("", answer)
        view[i] = {"role": "assistant", "content": action_text(thought=said, final_answer=answer)}
    if system_prompt != "agent":
        view[0] = {**view[0], "content": student_system_prompt(view[0]["content"], system_prompt)}
    return to_text_messages(view)


@dataclass
class Conversion:
    """Training rows from trajectories, and why the others were left out."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def to_rows(trajectories: Iterable[Trajectory], *, system_prompt: str = "agent") -> Conversion:
    """TRL conversational rows ``{"messages": [...]}`` (one per usable trajectory)."""
    out = Conversion()
    for traj in trajectories:
        if not any(m["role"] == "assistant" for m in traj.messages):
            out.dropped["no_assistant_turn"] += 1
            continue
        try:
            messages = agent_conversation(traj, system_prompt=system_prompt)
        except TrainingError as exc:
            out.dropped["unparsable_output" if "unparsable" in exc.message else "agent_kind"] += 1
            continue
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()  # trailing observations condition nothing and train nothing
        out.rows.append({"messages": messages, "id": traj.id})
    return out


def _packaged_chatml() -> str:
    return resources.files("slmkit.training").joinpath("templates/chatml_train.jinja").read_text()


def training_chat_template(tokenizer: Any) -> str:
    """A chat template for ``tokenizer`` with ``{% generation %}`` around assistant turns.

    Raises:
        TrainingError: the model's template is of a family neither TRL nor slmkit knows.
    """
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    own = tokenizer.chat_template
    if isinstance(own, dict):
        own = own.get("default")
    if not own:
        raise TrainingError(
            "the student's tokenizer has no chat template",
            hint="use an instruction-tuned student, or set tokenizer.chat_template",
        )
    if has_generation_markers(own):
        return str(own)
    try:
        patched = get_training_chat_template(tokenizer)
    except (ValueError, NotImplementedError):
        patched = None
    if patched:
        return str(patched)
    if "<|im_start|>" in own:
        return _packaged_chatml()
    raise TrainingError(
        "no training chat template (with {% generation %} blocks) for this student's template",
        hint="set tokenizer.chat_template to a version of it with {% generation %} around "
        "assistant content, or use a ChatML / Qwen / Llama-3 / Gemma student",
    )


def check_rendering(
    tokenizer: Any, template: str, rows: Sequence[dict[str, Any]], *, limit: int = 8
) -> None:
    """Check that training text = inference text, on the first ``limit`` rows.

    For every assistant turn, the model's own template with the generation prompt (what
    the running agent sends) must be a prefix of the training template's rendering of
    the conversation up to that turn, and the text after it must be the turn's content.

    Raises:
        TrainingError: the two templates disagree (the student would learn a format it
            never sees at inference).
    """
    for row in rows[:limit]:
        messages = row["messages"]
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            prompt = tokenizer.apply_chat_template(
                messages[:i], tokenize=False, add_generation_prompt=True
            )
            full = tokenizer.apply_chat_template(
                messages[: i + 1], tokenize=False, chat_template=template
            )
            if not full.startswith(prompt) or not full[len(prompt) :].startswith(m["content"]):
                raise TrainingError(
                    f"the training chat template renders row {row.get('id')} differently from "
                    "the model's inference template",
                    hint=f"inference prompt ends {prompt[-80:]!r}; training text there is "
                    f"{full[max(len(prompt) - 80, 0) : len(prompt) + 40]!r}",
                )


def assistant_token_mask(
    tokenizer: Any, template: str, messages: Sequence[dict[str, str]]
) -> tuple[list[int], list[int]]:
    """``(input_ids, mask)``: the tokens of a conversation and which ones are trained (1)."""
    out = tokenizer.apply_chat_template(
        list(messages),
        chat_template=template,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    return list(out["input_ids"]), list(out["assistant_masks"])
