"""Typed tools, the call schema a constrained model decodes under, and the code sandbox.

``@tool`` turns a typed, documented function into a :class:`Tool`; a
:class:`ToolRegistry` gives the JSON Schema of one call (``call_schema``) and executes
calls after validating them, returning a :class:`ToolResult` whatever happens.
:class:`PythonSandbox` runs model-written code isolated from the host.
"""

from slmkit.tools.builtins import (
    NUMBER_REGEX,
    calculator,
    evaluate_arithmetic,
    final_answer,
    python_tool,
)
from slmkit.tools.errors import SandboxError, ToolDefinitionError, ToolError
from slmkit.tools.prompting import describe_tool, describe_tools, tool_call_messages
from slmkit.tools.registry import NO_CALL, ToolCall, ToolRegistry, ToolResult
from slmkit.tools.sandbox import PythonSandbox, SandboxResult
from slmkit.tools.tool import Tool, inline_refs, normalize_parameters, tool

__all__ = [
    "NO_CALL",
    "NUMBER_REGEX",
    "PythonSandbox",
    "SandboxError",
    "SandboxResult",
    "Tool",
    "ToolCall",
    "ToolDefinitionError",
    "ToolError",
    "ToolRegistry",
    "ToolResult",
    "calculator",
    "describe_tool",
    "describe_tools",
    "evaluate_arithmetic",
    "final_answer",
    "inline_refs",
    "normalize_parameters",
    "python_tool",
    "tool",
    "tool_call_messages",
]
