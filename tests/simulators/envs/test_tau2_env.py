"""tau2 retail/airline over tau2's own tool code: gold actions earn 1, wrong writes earn 0."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from slmkit.simulators import run_episode
from slmkit.simulators.envs.tau2 import Tau2Env


@pytest.fixture(scope="module")
def retail() -> Tau2Env:
    return Tau2Env(domain="retail", split="test")  # scripted customer: no model


def _task_with(env: Tau2Env, tool: str) -> dict[str, Any]:
    for task in env.tasks():
        names = [a["name"] for a in env.gold_actions(task) or []]
        if tool in names:
            return task
    raise AssertionError(f"no test task uses {tool}")


def _replay(
    env: Tau2Env, task: dict[str, Any], actions: list[dict[str, Any]], answer: str | None
) -> float:
    env.reset(task)
    tools = env.tools()
    for action in actions:
        tools.execute(action)
    env.submit(answer)
    return env.reward()


def test_gold_actions_earn_one_on_retail_test_tasks(retail: Tau2Env) -> None:
    tasks = retail.tasks().take(6)
    rewards = {t["id"]: run_episode(retail, t, agent="gold").reward for t in tasks}
    assert all(r == 1.0 for r in rewards.values()), rewards


def test_a_wrong_refund_earns_zero(retail: Tau2Env) -> None:
    """Refunding other items of the same order (a valid call, the wrong one) earns 0."""
    for task in retail.tasks():
        gold = retail.gold_actions(task) or []
        ret = next((a for a in gold if a["name"] == "return_delivered_order_items"), None)
        if ret is None:
            continue
        retail.reset(task)
        order = retail.tools().execute(
            {"name": "get_order_details", "arguments": {"order_id": ret["arguments"]["order_id"]}}
        )
        others = [
            i["item_id"]
            for i in order.output["items"]
            if i["item_id"] not in ret["arguments"]["item_ids"]
        ]
        if others:
            break
    else:
        raise AssertionError("no return task with other items in the order")
    answer = retail.gold_answer(task)
    assert _replay(retail, task, gold, answer) == 1.0
    wrong = copy.deepcopy(gold)
    for action in wrong:
        if action["name"] == "return_delivered_order_items":
            action["arguments"]["item_ids"] = others[:1]
    assert _replay(retail, task, wrong, answer) == 0.0
    assert retail.reward_breakdown()["db"] == 0.0
    assert all(c["ok"] for c in retail.calls if c["name"] == "return_delivered_order_items")


def test_a_wrong_exchange_earns_zero(retail: Tau2Env) -> None:
    task = _task_with(retail, "exchange_delivered_order_items")
    gold = retail.gold_actions(task) or []
    wrong = [a for a in copy.deepcopy(gold) if a["name"] != "exchange_delivered_order_items"]
    assert _replay(retail, task, wrong, retail.gold_answer(task)) == 0.0


def test_required_information_and_a_deliberate_ending_count(retail: Tau2Env) -> None:
    task = next(t for t in retail.tasks() if t["evaluation_criteria"].get("communicate_info"))
    gold = retail.gold_actions(task) or []
    assert _replay(retail, task, gold, "Done, anything else?") == 0.0  # info not told
    assert retail.reward_breakdown() == {"db": 1.0, "communicate": 0.0}
    retail.reset(task)
    for action in gold:
        retail.tools().execute(action)
    assert retail.reward() == 0.0  # cut off: no final answer, no ###STOP###
    assert retail.reward_breakdown()["db"] == 1.0


def test_the_customer_talks_through_a_tool(retail: Tau2Env) -> None:
    task = retail.tasks().take(1)[0]
    first = retail.reset(task)
    assert first[0]["role"] == "system" and "policy" in first[0]["content"].lower()
    assert "Reason for calling" in first[-1]["content"]
    reply = retail.tools().execute(
        {"name": "send_message_to_user", "arguments": {"message": "Shall I proceed?"}}
    )
    assert reply.ok and reply.content
    assert retail.told_user == ["Shall I proceed?"]


@pytest.mark.slow
def test_gold_actions_earn_one_on_every_test_task() -> None:
    for domain, size in (("retail", 40), ("airline", 20)):
        env = Tau2Env(domain=domain, split="test")
        tasks = env.tasks().take(100)
        assert len(tasks) == size  # tau2's own test split
        rewards = {t["id"]: run_episode(env, t, agent="gold").reward for t in tasks}
        assert all(r == 1.0 for r in rewards.values()), rewards


def test_airline_gold_actions_earn_one() -> None:
    env = Tau2Env(domain="airline", split="test")
    task = env.tasks().take(1)[0]
    assert run_episode(env, task, agent="gold").reward == 1.0


@pytest.mark.parametrize(
    ("name", "options", "domain"),
    [
        ("tau2", {}, "retail"),
        ("tau2:airline", {}, "airline"),
        ("tau2-airline", {}, "airline"),
        ("tau2", {"domain": "airline"}, "airline"),
    ],
)
def test_the_domain_is_named_like_every_other_variant(
    name: str, options: dict[str, Any], domain: str
) -> None:
    from slmkit.simulators import load_env

    env = load_env(name, **options)
    assert isinstance(env, Tau2Env) and env.domain_name == domain
