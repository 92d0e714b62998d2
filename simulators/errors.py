"""Errors of :mod:`slmkit.simulators` (see :mod:`slmkit.models.errors` for the whole tree).

What goes wrong *inside* an episode (a tool that raises, an answer that is wrong, a
simulator output that fails its schema) is an observation or a reward of 0, never an
exception: collection and evaluation must survive a bad episode. A
:class:`SimulationError` is for what the caller must fix: an unknown environment name,
a task file that cannot be read, a reward asked for before ``reset``, an optional
backend (Ray) that is not installed.
"""

from __future__ import annotations

from slmkit.models import SlmkitError

__all__ = ["SimulationError"]


class SimulationError(SlmkitError):
    """An environment, task set, collection or evaluation could not run as asked."""
