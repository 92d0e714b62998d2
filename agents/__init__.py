"""LangGraph agents for small models: tool calls, code actions, cited RAG, routing.

Every action is decoded under a grammar of what exists (the registered tools and their
argument schemas, or a Thought + fenced-code envelope), so a 135M model cannot break the
loop with a malformed action. Runs are LangGraph graphs with a checkpointer (resumable),
stream :class:`StepEvent`\\ s, and return a :class:`RunResult` with a :class:`Trajectory`
and production metrics::

    from slmkit.agents import ToolAgent
    from slmkit.models import load_model
    from slmkit.tools import calculator

    agent = ToolAgent(load_model("llamacpp:smollm2"), [calculator], max_steps=4)
    result = agent.run("What is 17 * 23?")
    print(result.answer, result.metrics.schema_valid_rate)
"""

from slmkit.agents.actions import Action, action_text, bound_strings, canonical_call
from slmkit.agents.code_agent import CodeAgent
from slmkit.agents.config import (
    AgentConfig,
    CodeAgentConfig,
    RagConfig,
    RouterConfig,
    TokenPrice,
    with_options,
)
from slmkit.agents.errors import AgentError
from slmkit.agents.events import ModelCall, StepEvent
from slmkit.agents.first_thought import FirstThought, generate_first_thought
from slmkit.agents.graph import EventStream
from slmkit.agents.metrics import RunMetrics, RunResult
from slmkit.agents.rag_agent import RagAgent
from slmkit.agents.router import Routed, Router, Signals
from slmkit.agents.tool_agent import ToolAgent
from slmkit.agents.trajectory import Trajectory, read_trajectories, request_text

__all__ = [
    "Action",
    "AgentConfig",
    "AgentError",
    "CodeAgent",
    "CodeAgentConfig",
    "EventStream",
    "FirstThought",
    "ModelCall",
    "RagAgent",
    "RagConfig",
    "Routed",
    "Router",
    "RouterConfig",
    "RunMetrics",
    "RunResult",
    "Signals",
    "StepEvent",
    "TokenPrice",
    "ToolAgent",
    "Trajectory",
    "action_text",
    "bound_strings",
    "canonical_call",
    "generate_first_thought",
    "read_trajectories",
    "request_text",
    "with_options",
]
