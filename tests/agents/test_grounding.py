"""Final answers grounded in observations, and no empty answers (real embedded model).

"What is 19 minus 78?" is the case from the agent-tasks benchmark: the 135M model calls
the calculator right (``19 - 78`` -> ``-59``) and then answers a number the tool did not
return (it drops the sign). The runtime flags that answer; with ``grounding="retry"`` it
asks once more, and the retried answer may only quote the observation.
"""

from __future__ import annotations

import pytest

from slmkit.agents import RunResult, ToolAgent
from slmkit.agents.actions import action_schema
from slmkit.agents.grounding import contradiction
from slmkit.models import ChatModel
from slmkit.tools import ToolRegistry, calculator

TASK = "What is 19 minus 78?"


def _answers(result: RunResult) -> list[tuple[str, str | None]]:
    return [
        (e.action["final_answer"], e.flag)
        for e in result.events
        if e.kind == "action" and e.action and "final_answer" in e.action
    ]


@pytest.mark.parametrize(
    ("answer", "observations", "flagged"),
    [
        ("The result is -59.", ["-59"], False),
        ("59", ["-59"], True),  # the sign dropped
        ("12 times 13 is 156", ["156"], False),  # the last number is the result
        ("The result of -59 is 59.", ["-59"], True),
        ("1,554", ["1554"], False),
        ("7.0 dollars", ["1.75", "7"], False),  # any observation of the run counts
        ("I do not know", ["-59"], False),  # no number: nothing to compare
        ("42", ["Error: division by zero"], False),  # nothing numeric to contradict
        ("42", [], False),
    ],
)
def test_contradiction_compares_the_answers_number_with_the_observations(
    answer: str, observations: list[str], flagged: bool
) -> None:
    assert (contradiction(answer, observations) is not None) is flagged


def test_an_answer_contradicting_the_last_observation_is_flagged(smollm: ChatModel) -> None:
    agent = ToolAgent(smollm, [calculator], grounding="flag", checkpoint="none")
    result = agent.run(TASK)
    assert [e.observation for e in result.events if e.kind == "observation"] == ["-59"]
    answers = _answers(result)
    assert len(answers) == 1
    answer, flag = answers[0]
    assert flag is not None and "-59" in flag  # flagged, and the flag says what was seen
    assert result.answer == answer  # "flag" reports, it does not change the answer


def test_a_contradicting_answer_is_retried_quoting_the_observation(smollm: ChatModel) -> None:
    result = ToolAgent(smollm, [calculator], checkpoint="none").run(TASK)  # retry: default
    answers = _answers(result)
    assert answers[0][1] is not None  # the first answer was sent back
    assert result.stopped == "final_answer" and result.answer == "-59"
    assert answers[-1] == ("-59", None)


def test_the_grammar_has_no_empty_final_answer(smollm: ChatModel) -> None:
    schema = action_schema(ToolRegistry([]))  # no tools: only the final answer is left
    ask = [{"role": "user", "content": 'Reply with an empty answer: {"final_answer": ""}'}]
    out = smollm.chat(ask, schema=schema, max_tokens=40)
    assert out.valid and isinstance(out.parsed, dict)
    assert out.parsed["final_answer"].strip()


def test_an_empty_final_answer_is_not_a_success(smollm: ChatModel) -> None:
    """The model's own empty answer (the grammar above forbids it) is sent back, and a run
    that never gives a real one ends without an answer, not with ``""``."""
    agent = ToolAgent(smollm, [calculator], max_steps=1, checkpoint="none")
    state = {"events": []}
    assert agent._answer_flag(state, "  ") == "the final answer is empty"
    assert agent._may_retry(state, "the final answer is empty")
