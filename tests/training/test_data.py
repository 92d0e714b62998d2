"""Training rows are exactly what the agent reads and writes; only its tokens are trained."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Unpack

import pytest

from slmkit.agents import Trajectory
from slmkit.models import ChatModel, ChatOptions, Completion, Message, WrappedModel, load_model
from slmkit.models.chat_format import to_text_messages
from slmkit.training.data import (
    agent_conversation,
    assistant_token_mask,
    check_rendering,
    to_rows,
    training_chat_template,
)
from slmkit.training.errors import TrainingError
from slmkit.training.filtering import filter_trajectories
from slmkit.training.student import StudentPromptModel, student_system_prompt


class Recording(WrappedModel):
    """Passes calls to a real model and records what it was shown and what it wrote."""

    def __init__(self, inner: ChatModel) -> None:
        super().__init__(inner)
        self.calls: list[tuple[list[dict[str, str]], str]] = []

    def chat_batch(
        self, conversations: Sequence[Sequence[Message]], **options: Unpack[ChatOptions]
    ) -> list[Completion]:
        out = super().chat_batch(conversations, **options)
        for conv, completion in zip(conversations, out, strict=True):
            self.calls.append((to_text_messages(list(conv)), completion.text))
        return out


@pytest.mark.parametrize("thought", [False, True])
def test_training_conversation_is_what_the_real_agent_saw_and_wrote(thought: bool) -> None:
    """A real ToolAgent run: every prompt the model got, and every action it emitted,
    appears verbatim in the training conversation built from its trajectory; with
    thoughts on, the final answer's thought too (not inside the answer)."""
    from slmkit.simulators import load_env, run_episode

    recorder = Recording(load_model("llamacpp:smollm2"))
    env = load_env("bfcl:multiple", split="train")
    task = env.tasks().take(1)[0]
    options = {"max_steps": 2, "thought": thought}
    traj = run_episode(env, task, model=recorder, options=options)
    conv = agent_conversation(traj)
    assert "final_answer" in json.loads(conv[-1]["content"])  # the run answered
    assistant_at = [i for i, m in enumerate(conv) if m["role"] == "assistant"]
    assert assistant_at and recorder.calls
    for i in assistant_at:
        # the step's model call(s) saw exactly the conversation so far (a step decoded
        # again, e.g. after only repeating a call, is shown the same messages)
        wrote = [text for shown, text in recorder.calls if shown == conv[:i]]
        assert wrote, f"no model call saw the conversation up to turn {i}"
        assert wrote[-1] == conv[i]["content"]
    assert all(any(shown == conv[:i] for i in assistant_at) for shown, _ in recorder.calls)


def test_multi_turn_view_and_final_answer(multi_turn: Trajectory) -> None:
    conv = agent_conversation(multi_turn)
    assert [m["role"] for m in conv] == [
        "system", "user", "assistant", "user", "assistant", "user", "assistant",
    ]  # fmt: skip
    assert json.loads(conv[2]["content"]) == {"name": "get_weather", "arguments": {"city": "Pari"}}
    assert conv[3]["content"].startswith("Observation: the result is Error: unknown city")
    # the final answer is trained as the JSON action the model emits, not as bare text
    assert json.loads(conv[-1]["content"]) == {"final_answer": "Yes, it is raining in Paris."}


def test_label_mask_trains_exactly_the_assistant_turns(
    tokenizer: Any, multi_turn: Trajectory
) -> None:
    conv = agent_conversation(multi_turn)
    template = training_chat_template(tokenizer)
    ids, mask = assistant_token_mask(tokenizer, template, conv)
    labels = [t if m else -100 for t, m in zip(ids, mask, strict=True)]
    trained = tokenizer.decode([t for t in labels if t != -100])
    expected = "".join(m["content"] + "<|im_end|>" for m in conv if m["role"] == "assistant")
    assert trained == expected
    # everything of the system prompt, the task and the observations is masked
    masked = tokenizer.decode([t for t, m in zip(ids, mask, strict=True) if not m])
    for m in conv:
        if m["role"] != "assistant":
            assert m["content"] in masked
    for span in ("You are an agent", "Is it raining", "Observation:"):
        assert span not in trained


def test_rendering_check_accepts_chatml_and_rejects_a_drifting_template(
    tokenizer: Any, multi_turn: Trajectory
) -> None:
    rows = to_rows([multi_turn]).rows
    template = training_chat_template(tokenizer)
    check_rendering(tokenizer, template, rows)
    drifting = template.replace("'<|im_start|>assistant\\n'", "'<|im_start|>assistant \\n'")
    assert drifting != template
    with pytest.raises(TrainingError, match="differently"):
        check_rendering(tokenizer, drifting, rows)


def test_short_student_prompt_keeps_tools_and_matches_inference(multi_turn: Trajectory) -> None:
    conv = agent_conversation(multi_turn, system_prompt="short")
    assert conv[0]["content"].startswith("Reply with one JSON action")
    assert "get_weather(city: string)" in conv[0]["content"]
    # the wrapper a served student runs with rewrites the agent prompt the same way
    wrapper = StudentPromptModel(load_model("llamacpp:smollm2"), "short")
    agent_prompt = agent_conversation(multi_turn)[0]["content"]
    assert wrapper.rewrite([{"role": "system", "content": agent_prompt}])[0]["content"] == (
        student_system_prompt(agent_prompt, "short")
    )


def test_filter_keeps_recovered_errors_and_drops_failures(multi_turn: Trajectory) -> None:
    failed = multi_turn.model_copy(
        update={"id": "f", "meta": {**multi_turn.meta, "success": False}}
    )
    unparsable = multi_turn.model_copy(
        update={"id": "u", "metrics": {**multi_turn.metrics, "valid_outputs": 2}}
    )
    kept = filter_trajectories([multi_turn, failed, unparsable])
    assert [t.id for t in kept.kept] == ["weather-1"]
    assert kept.recovered_errors == 1
    assert dict(kept.dropped) == {"incorrect": 1, "parse_error": 1}
    strict = filter_trajectories([multi_turn], keep_recovered_errors=False)
    assert dict(strict.dropped) == {"tool_error": 1}
