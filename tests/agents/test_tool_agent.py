"""ToolAgent with the real embedded model (SmolLM2-135M, llama.cpp, greedy decoding).

The bank task needs three actions in order (look up the id, look up the balance, answer)
and its balance service fails the first time. What makes a 135M model do it is the
runtime, and the tests say so: every action is decoded under the tools' grammar, the
observation of each call is shown as an ``Observation:`` turn, and an action that only
repeats an earlier successful call is decoded again without that tool (``no_repeat``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from agent_helpers import TASK, Bank, assert_all_actions_valid
from pydantic import Field

from slmkit.agents import AgentError, Router, RunResult, StepEvent, ToolAgent, Trajectory
from slmkit.models import ChatModel
from slmkit.tools import tool

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def routed(
    smollm: ChatModel, large_model: ChatModel
) -> Iterator[tuple[RunResult, Bank, list[StepEvent]]]:
    """One streamed run of the bank task through a Router (small -> large on tool errors)."""
    bank = Bank()
    agent = ToolAgent(Router(smollm, large_model), bank.tools, max_steps=5, checkpoint="memory")
    stream = agent.stream(TASK)
    events = list(stream)
    yield stream.result, bank, events
    agent.close()


def test_completes_a_three_step_task_with_real_tools(
    routed: tuple[RunResult, Bank, list[StepEvent]],
) -> None:
    result, bank, _ = routed
    assert result.stopped == "final_answer"
    assert result.answer is not None and "120.50" in result.answer
    calls = result.trajectory.tool_calls
    assert calls[0] == {"name": "get_user_id", "arguments": {"name": "Alice"}}
    assert calls[-1] == {"name": "get_balance", "arguments": {"user_id": 42}}
    assert bank.calls["get_user_id"] == 1
    answers = [e for e in result.events if e.kind == "action" and "final_answer" in e.action]
    assert result.metrics.steps == len(calls) + len(answers)  # the calls, then the answer
    assert answers[-1].flag is None  # (a flagged one is sent back, and answered again)


def test_every_action_parses_and_validates(routed: tuple[RunResult, Bank, list[StepEvent]]) -> None:
    result, _, _ = routed
    assert_all_actions_valid(result)
    for message in result.trajectory.messages:
        for tc in message.get("tool_calls") or ():
            json.loads(tc["function"]["arguments"])


def test_a_tool_error_is_observed_and_the_agent_continues(
    routed: tuple[RunResult, Bank, list[StepEvent]],
) -> None:
    result, bank, _ = routed
    failed = [e for e in result.events if e.kind == "observation" and not e.ok]
    assert len(failed) == 1 and "busy" in (failed[0].observation or "")
    tool_messages = [m for m in result.trajectory.messages if m["role"] == "tool"]
    assert any(m["content"].startswith("Error: ConnectionError") for m in tool_messages)
    assert bank.calls["get_balance"] == 2  # retried after the error, then succeeded
    assert result.metrics.executable_call_rate == pytest.approx(2 / 3)


def test_router_escalates_after_the_planted_failure_and_records_why(
    routed: tuple[RunResult, Bank, list[StepEvent]],
) -> None:
    result, _, _ = routed
    actions = [e for e in result.events if e.kind == "action"]
    failed_step = next(e.step for e in result.events if e.kind == "observation" and not e.ok)
    after = next(e for e in actions if e.step == failed_step + 1)
    assert after.model == "smollm2-large"
    assert after.escalation is not None and after.escalation.startswith("tool check failed")
    # Only a failed check escalates a step (here also the answer's, when the grounding
    # check sends a looping answer back); every other step stays on the small model.
    escalated = [e for e in actions if e.escalation is not None]
    assert all(e.escalation.split(":")[0].endswith("check failed") for e in escalated)
    assert all(e.model == ("smollm2-large" if e in escalated else "smollm2") for e in actions)
    assert result.metrics.escalations == len(escalated)
    assert set(result.metrics.by_model) == {"smollm2", "smollm2-large"}
    routing = result.trajectory.meta["routing"]
    assert routing[after.step - 1] == {
        "step": after.step,
        "model": "smollm2-large",
        "escalation": after.escalation,
    }


def test_stream_yields_step_events_with_timing(
    routed: tuple[RunResult, Bank, list[StepEvent]],
) -> None:
    result, _, events = routed
    assert events[-1].kind == "done" and events[-1].answer == result.answer
    assert [e.kind for e in events[:2]] == ["action", "observation"]
    assert all(e.t1 >= e.t0 > 0 for e in events)
    m = result.metrics
    assert len(m.step_wall_s) == m.steps and all(w > 0 for w in m.step_wall_s)
    assert all(o >= 0 for o in m.step_overhead_s)
    assert m.prompt_tokens > 0 and m.completion_tokens > 0


def test_trajectory_round_trips_and_tokenizes_with_trl(
    routed: tuple[RunResult, Bank, list[StepEvent]],
) -> None:
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl.data_utils import apply_chat_template

    from slmkit.models.hf import convert_embedded

    traj = routed[0].trajectory
    again = Trajectory.from_json(traj.to_json())
    assert again == traj
    # what the user asked: not the tool results, nor a retry's feedback (a user turn too)
    assert again.request == TASK
    row = again.to_trl()
    assert row["tools"][0]["function"]["name"] == "get_user_id"
    tok = AutoTokenizer.from_pretrained(convert_embedded())
    encoded = tok.apply_chat_template(
        row["messages"], tools=row["tools"], tokenize=True, return_dict=True
    )
    assert len(encoded["input_ids"]) > 50
    text = apply_chat_template({"messages": row["messages"]}, tok, tools=row["tools"])["text"]
    assert "120.50" in text
    assert Dataset.from_list([row]).num_rows == 1


def test_max_steps_stops_a_looping_agent(smollm: ChatModel) -> None:
    checks: list[int] = []

    @tool
    def check_job(job_id: int) -> str:
        """the status of a background job"""
        checks.append(job_id)
        return f"job {job_id} is still running; check again later"

    # answer_on_last_step off: the point is the stop itself (with it, step 2 answers).
    agent = ToolAgent(
        smollm,
        [check_job],
        max_steps=2,
        no_repeat=False,
        answer_on_last_step=False,
        checkpoint="none",
    )
    result = agent.run("Wait until job 7 has finished, then report its result.")
    assert result.stopped == "max_steps" and result.answer is None
    assert result.metrics.steps == 2 and checks == [7, 7]
    assert_all_actions_valid(result)


def test_an_action_cut_by_the_token_budget_is_answered_and_the_agent_acts_again(
    smollm: ChatModel,
) -> None:
    """A constrained action can still be unfinished (the budget ran out mid-string): the
    model is told so and acts again, and the run ends normally instead of crashing."""
    notes: list[str] = []

    @tool
    def save_note(text: Annotated[str, Field(min_length=300)]) -> str:
        """save a long note"""
        notes.append(text)
        return "saved"

    agent = ToolAgent(
        smollm,
        [save_note],
        max_steps=2,
        max_tokens=16,
        answer_on_last_step=False,  # both steps may try the call
        checkpoint="none",
    )
    result = agent.run("Write a long note about the history of Lyon and save it.")
    assert result.stopped == "max_steps" and not notes
    actions = [e for e in result.events if e.kind == "action"]
    assert len(actions) == 2 and not any(e.valid for e in actions)
    feedback = [m["content"] for m in result.trajectory.messages if m["role"] == "user"][1:]
    assert feedback and all(f.startswith("Error: that was not a complete action") for f in feedback)


@pytest.mark.slow
def test_a_killed_run_resumes_without_repeating_finished_calls(tmp_path: Path) -> None:
    db, counter = tmp_path / "runs.sqlite", tmp_path / "calls.json"
    job = subprocess.run(
        [sys.executable, str(HERE / "agent_job.py"), str(db), str(counter), "job-1"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert job.returncode == -9, job.stderr[-2000:]  # SIGKILL inside get_balance
    assert json.loads(counter.read_text()) == {"get_user_id": 1, "get_balance": 1}

    from agent_job import TASK as JOB_TASK
    from agent_job import make_agent

    agent = make_agent(db, counter, kill=False)
    result = agent.run(JOB_TASK, thread_id="job-1")
    agent.close()
    assert result.stopped == "final_answer" and "120.50" in (result.answer or "")
    # get_user_id finished before the kill and was not run again; the killed
    # get_balance never finished, so it ran once more.
    assert json.loads(counter.read_text()) == {"get_user_id": 1, "get_balance": 2}
    assert [c["name"] for c in result.trajectory.tool_calls] == ["get_user_id", "get_balance"]
    actions = [e for e in result.events if e.kind == "action"]
    assert [e.step for e in actions] == [1, 2, 3]  # step 2's action was not decoded again
    assert len({e.session for e in result.events}) == 2  # the killed run, the resumed run
    with pytest.raises(AgentError, match="another task"):
        make_agent(db, counter, kill=False).run("another task", thread_id="job-1")


def test_approval_interrupts_before_a_call_and_resumes(smollm: ChatModel, db: Path) -> None:
    bank = Bank()
    agent = ToolAgent(smollm, bank.tools, max_steps=1, approve="interrupt", checkpoint_path=db)
    first = agent.run(TASK, thread_id="approve-me")
    assert first.stopped == "interrupted" and not first.finished
    assert first.interrupt == {
        "step": 1,
        "call": {"name": "get_user_id", "arguments": {"name": "Alice"}},
    }
    assert sum(bank.calls.values()) == 0  # nothing ran before the decision
    again = agent.run(TASK, thread_id="approve-me")  # still waiting: nothing runs
    assert again.stopped == "interrupted" and sum(bank.calls.values()) == 0
    done = agent.resume("approve-me", True)
    assert done.stopped == "max_steps" and bank.calls["get_user_id"] == 1
    agent.close()


def test_a_rejected_call_becomes_an_observation(smollm: ChatModel) -> None:
    bank = Bank()
    agent = ToolAgent(
        smollm, bank.tools, max_steps=1, approve=lambda call: "not today", checkpoint="none"
    )
    result = agent.run(TASK)
    obs = next(e for e in result.events if e.kind == "observation")
    assert not obs.ok and obs.observation == "Error: the call was not approved: not today"
    assert sum(bank.calls.values()) == 0


def test_first_thought_prefix_seeds_the_first_step(smollm: ChatModel) -> None:
    bank = Bank()
    prefix = "First I need the user id of Alice"
    agent = ToolAgent(smollm, bank.tools, max_steps=1, first_thought=prefix, checkpoint="none")
    result = agent.run(TASK)
    action = next(e for e in result.events if e.kind == "action")
    assert action.action is not None and action.action["thought"].startswith(prefix)
    assert result.trajectory.messages[2]["content"].startswith(prefix)  # the thought is kept


def test_sample_k_tries_pure_tools_in_isolation_and_never_side_effects(smollm: ChatModel) -> None:
    bank = Bank(fail_first=False)
    agent = ToolAgent(
        smollm,
        bank.tools,
        max_steps=1,
        sample_k=3,
        sample_temperature=0.3,
        side_effect_tools=["get_balance"],
        argument_checks=False,  # every sample takes part (a rejected one would not)
        checkpoint="none",
    )
    result = agent.run(TASK)
    assert_all_actions_valid(result)
    action = next(e for e in result.events if e.kind == "action")
    assert len(action.candidates) == 3 and sum(c["chosen"] for c in action.candidates) == 1
    texts = [c["text"] for c in action.candidates]
    tried = sum('"get_user_id"' in t for t in texts)
    winner = next(c for c in action.candidates if c["chosen"])
    # Pure candidates ran once each in their trial; the winner's result was adopted,
    # not run again. A side-effecting call ran only if it won, and then once.
    assert tried >= 1 and bank.calls["get_user_id"] == tried, texts
    assert bank.calls["get_balance"] == int('"get_balance"' in winner["text"])
    assert len(result.trajectory.tool_calls) == int('"name"' in winner["text"])
