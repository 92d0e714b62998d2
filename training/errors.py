"""Errors of :mod:`slmkit.training` (see :mod:`slmkit.models.errors` for the whole tree).

A :class:`TrainingError` is for what the caller must fix: no usable trajectories, a
student that cannot be loaded or trained, a run folder that belongs to another
configuration, an export without a converter. What goes wrong inside an episode is
data (a failed trajectory), never an exception.
"""

from __future__ import annotations

from slmkit.models import SlmkitError

__all__ = ["TrainingError"]


class TrainingError(SlmkitError):
    """Training, distillation or export could not run as asked (see ``hint``)."""
