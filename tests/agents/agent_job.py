"""A ToolAgent job that SIGKILLs its own process inside its second tool call.

Run as ``python agent_job.py DB COUNTER THREAD`` by the resume test; the test then
resumes the same thread in its own process with :func:`make_agent`. The counter file
records every tool execution across both processes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from slmkit.agents import ToolAgent
from slmkit.models import load_model
from slmkit.tools import Tool

TASK = "What is the account balance of Alice?"


def make_agent(db: Path, counter: Path, *, kill: bool) -> ToolAgent:
    def bump(name: str) -> int:
        data = json.loads(counter.read_text()) if counter.exists() else {}
        data[name] = data.get(name, 0) + 1
        counter.write_text(json.dumps(data))
        return int(data[name])

    def get_user_id(name: str) -> int:
        """the numeric id of a user"""
        bump("get_user_id")
        return {"alice": 42}.get(name.strip().lower(), -1)

    def get_balance(user_id: int) -> str:
        """the account balance of a user id"""
        if bump("get_balance") == 1 and kill:
            os.kill(os.getpid(), signal.SIGKILL)  # dies mid-call: the call never finishes
        if user_id != 42:
            raise KeyError(f"unknown user id {user_id}")
        return "The balance of user 42 is 120.50 dollars."

    tools = [Tool.from_function(get_user_id), Tool.from_function(get_balance)]
    return ToolAgent(load_model("llamacpp:smollm2"), tools, max_steps=5, checkpoint_path=db)


if __name__ == "__main__":
    db, counter, thread = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    make_agent(db, counter, kill=True).run(TASK, thread_id=thread)
    sys.exit("the job was supposed to be killed")
