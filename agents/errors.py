"""Errors of :mod:`slmkit.agents` (see :mod:`slmkit.models.errors` for the whole tree).

What goes wrong *inside* a run (an invalid action, a failing tool, code that raises) is
an observation the agent reads and a number in the metrics, never an exception. An
:class:`AgentError` is for what the caller must fix: an agent built without tools, a
thread id reused for another task, a resume without a checkpointer.
"""

from __future__ import annotations

from slmkit.models import SlmkitError

__all__ = ["AgentError"]


class AgentError(SlmkitError):
    """An agent could not be built, run or resumed as asked (see ``hint``)."""
