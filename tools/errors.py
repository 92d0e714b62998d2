"""Errors of :mod:`slmkit.tools` (see :mod:`slmkit.models.errors` for the whole tree).

A tool that fails *while an agent runs it* is not an exception: it becomes a
:class:`~slmkit.tools.ToolResult` with ``ok=False`` the agent can read. These errors are
for programming mistakes: a function that cannot become a tool, a misused sandbox.
"""

from __future__ import annotations

from slmkit.models import SlmkitError

__all__ = ["SandboxError", "ToolDefinitionError", "ToolError"]


class ToolError(SlmkitError):
    """Base of tool-layer errors."""


class ToolDefinitionError(ToolError):
    """A Python function or JSON schema cannot be turned into a Tool."""


class SandboxError(ToolError):
    """The code sandbox could not start, or was used after it was closed."""
