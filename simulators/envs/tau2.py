"""``tau2-retail`` / ``tau2-airline``: customer service over a real database.

An episode: the agent reads the domain policy and the customer's opening message, calls
the domain's real tools (tau2's own code over a fresh copy of the database, see
:mod:`slmkit.simulators.envs.tau2_data`) and talks to the customer through
``send_message_to_user``, whose result is the customer's reply (a
:class:`~slmkit.simulators.envs.user.UserSimulator` playing the task's instructions).

The reward is tau2's for these domains (``reward_basis`` defaults to DB and
COMMUNICATE):

* **db**: the final database equals the one the task's gold actions produce from the
  initial database (compared, as tau2 does, by the sha256 of the sorted JSON dump);
* **communicate**: every string of the task's ``communicate_info`` occurs (case-folded,
  commas removed) in something the agent told the customer;
* the episode must end on purpose: by the agent's final answer or the customer's
  ``###STOP###``; a run cut off by its step limit earns 0, as in tau2.

Splits are tau2's own ``split_tasks.json`` (retail 74 train / 40 test, airline 30 / 20).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from slmkit.models import ChatModel, Message, render_prompt
from slmkit.simulators.base import Environment, RewardReport, Task, jsonable, tool_from_method
from slmkit.simulators.envs.tau2_data import DOMAINS, Tau2Domain, load_domain
from slmkit.simulators.envs.user import UserSimulator, resolve_model, scenario_text
from slmkit.simulators.errors import SimulationError
from slmkit.tools import Tool

__all__ = ["Tau2Env", "db_hash"]

_UNSUPPORTED_BASES = {"ACTION", "ENV_ASSERTION", "NL_ASSERTION"}


def db_hash(dump: Mapping[str, Any]) -> str:
    """tau2's database hash: sha256 of the JSON dump with sorted keys."""
    text = json.dumps(dump, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Tau2Env(Environment):
    """A tau2-bench domain (see the module docs).

    Args:
        domain: ``"retail"`` or ``"airline"``.
        user_model: the model (or spec) playing the customer; None for a scripted
            customer (opening = the task's scenario, replies = confirmations).
        policy: ``"full"`` puts the domain policy in the system message, ``"none"``
            leaves it out (for models whose context cannot hold it).
        split, limit: as for every environment.
    """

    name = "tau2"

    def __init__(
        self,
        *,
        domain: str = "retail",
        user_model: ChatModel | str | None = None,
        policy: str = "full",
        split: str = "test",
        limit: int | None = None,
    ) -> None:
        if domain not in DOMAINS:
            raise SimulationError(
                f"unknown tau2 domain {domain!r}", hint=f"choose one of {DOMAINS}"
            )
        if policy not in ("full", "none"):
            raise SimulationError(f"policy must be 'full' or 'none', not {policy!r}", hint=None)
        super().__init__(split=split, limit=limit)
        self.name = f"tau2-{domain}"
        self.domain_name = domain
        self.user_model = resolve_model(user_model)
        self.policy_mode = policy
        self.domain: Tau2Domain = load_domain(domain)
        self.splits = tuple(k for k in ("train", "test", "base") if k in self.domain.splits)
        self._by_id = {str(t["id"]): t for t in self.domain.tasks}
        self._toolkit: Any = None
        self._user: UserSimulator | None = None
        self._gold: dict[str, str] = {}
        self.told_user: list[str] = []
        """Everything the agent said to the customer this episode."""

    # -- tasks

    def _tasks(self, split: str) -> list[Task]:
        ids = self.domain.splits[split]
        return [self._task(self._by_id[i], split) for i in ids if i in self._by_id]

    def _task(self, raw: Mapping[str, Any], split: str) -> Task:
        instructions = (raw.get("user_scenario") or {}).get("instructions") or {}
        return {
            "id": f"{self.domain_name}-{raw['id']}",
            "tau2_id": str(raw["id"]),
            "split": split,
            "domain": self.domain_name,
            "prompt": str(instructions.get("reason_for_call") or ""),
            "user_scenario": raw.get("user_scenario"),
            "evaluation_criteria": raw.get("evaluation_criteria"),
        }

    # -- episode

    def _start(self, task: Task) -> list[Message]:
        self._toolkit = self.domain.new_toolkit()
        self.told_user = []
        self._user = UserSimulator(
            self.user_model,
            scenario=scenario_text(task) or str(task.get("prompt", "")),
            log=self.log,
        )
        messages: list[Message] = []
        if self.policy_mode == "full":
            policy = self.domain.policy
            system = render_prompt("slmkit.simulators.envs", "tau2_system.md", policy=policy)
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": self._user.opening()})
        return messages

    def _build_tools(self) -> list[Tool]:
        tools = []
        for name, method in self.domain.toolkit_cls(None).tools.items():
            tool = tool_from_method(method)
            tools.append(dataclasses.replace(tool, fn=self._dispatch(name)))
        talk = tool_from_method(self.send_message_to_user)
        return [*tools, talk]

    def _dispatch(self, name: str) -> Any:
        def run(**kwargs: Any) -> Any:
            if self._toolkit is None:
                raise SimulationError("no episode", hint="call env.reset(task) first")
            return jsonable(getattr(self._toolkit, name)(**kwargs))

        return run

    def send_message_to_user(self, message: str) -> str:
        """Send a message to the customer and return the customer's reply.

        Args:
            message: what to tell or ask the customer
        """
        self.told_user.append(message)
        if self._user is None:
            raise SimulationError("no episode", hint="call env.reset(task) first")
        return self._user.reply(message)

    def submit(self, answer: str | None, *, citations: Any = ()) -> None:
        super().submit(answer, citations=citations)
        if answer:
            self.told_user.append(answer)

    @property
    def done(self) -> bool:
        return self.submitted or (self._user is not None and self._user.stopped)

    def agent_hints(self) -> dict[str, Any]:
        writes = sorted(self.mutating_tools() or ())
        return {"side_effect_tools": [*writes, "send_message_to_user"], "max_steps": 20}

    def domain_text(self) -> str:
        return self.domain.policy

    def mutating_tools(self) -> set[str] | None:
        return {n for n in self.domain.tool_names() if self.domain.is_write_tool(n)}

    @property
    def db_dump(self) -> dict[str, Any]:
        """The current database as tau2 dumps it."""
        if self._toolkit is None:
            raise SimulationError("no episode", hint="call env.reset(task) first")
        dump: dict[str, Any] = self._toolkit.db.model_dump()
        return dump

    # -- reward

    def _gold_hash(self, task: Task) -> str:
        key = str(task["id"])
        if key not in self._gold:
            toolkit = self.domain.new_toolkit()
            for action in _criteria(task).get("actions") or []:
                try:  # tau2 logs and skips gold actions that fail
                    getattr(toolkit, action["name"])(**action["arguments"])
                except Exception:
                    continue
            self._gold[key] = db_hash(toolkit.db.model_dump())
        return self._gold[key]

    def _score(self, task: Task) -> RewardReport:
        criteria = _criteria(task)
        basis = set(criteria.get("reward_basis") or ["DB", "COMMUNICATE"])
        unsupported = basis & _UNSUPPORTED_BASES
        if unsupported:
            raise SimulationError(
                f"task {task['id']} is scored on {sorted(unsupported)}, which slmkit does not "
                "implement for tau2",
                hint="airline and retail tasks use DB and COMMUNICATE only",
            )
        db_ok = db_hash(self.db_dump) == self._gold_hash(task)
        said = [m.lower().replace(",", "") for m in self.told_user]
        info = [str(s) for s in criteria.get("communicate_info") or []]
        missing = [s for s in info if not any(s.lower() in m for m in said)]
        breakdown = {"db": float(db_ok), "communicate": float(not missing)}
        ended = self.done
        reward = 1.0
        if "DB" in basis:
            reward *= breakdown["db"]
        if "COMMUNICATE" in basis:
            reward *= breakdown["communicate"]
        if not ended:
            reward = 0.0
        return self._report(
            reward,
            breakdown,
            ended=ended,
            user_stopped=bool(self._user and self._user.stopped),
            missing_info=missing,
        )

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        return [
            {"name": a["name"], "arguments": dict(a["arguments"])}
            for a in _criteria(task).get("actions") or []
        ]

    def gold_answer(self, task: Mapping[str, Any]) -> str | None:
        info = [str(s) for s in _criteria(task).get("communicate_info") or []]
        if not info:
            return "Your request has been handled. Is there anything else?"
        return "Here is what you asked for: " + ", ".join(info) + "."


def _criteria(task: Mapping[str, Any]) -> dict[str, Any]:
    crit = task.get("evaluation_criteria") or {}
    return dict(crit)
