"""The concrete environments, one module each behind :class:`~slmkit.simulators.Environment`.

=================  ============================================================
``bfcl``           BFCL single-turn function calling (``bfcl_data`` loads the
                   questions, ``bfcl_check`` is the AST checker)
``math``           numeric word problems with a sandbox and a calculator
``code``           HumanEval functions, graded by their hidden tests in a sandbox
``qa``             questions over a retrieval index (``qa_tasks`` generates them)
``tau2``           tau2-bench customer service (``tau2_data`` loads a domain)
``thermostat``     one tool and one exact call, two turns (the RL smoke test)
``simulated``      tools and user played by a model from schemas alone (``user``
                   is the user simulator, ``consistency`` keeps answers coherent)
=================  ============================================================

``scoring`` (answer matching) and ``pkgimport`` (importing data-only PyPI packages)
are shared by them. Build one by name with :func:`slmkit.simulators.load_env`, which
imports them on first use; nothing here imports the registry back.
"""

from slmkit.simulators.envs.bfcl import BfclEnv
from slmkit.simulators.envs.code import CodeEnv
from slmkit.simulators.envs.math import MathEnv
from slmkit.simulators.envs.qa import QaEnv
from slmkit.simulators.envs.simulated import SimulatedEnvironment
from slmkit.simulators.envs.tau2 import Tau2Env
from slmkit.simulators.envs.thermostat import ThermostatEnv
from slmkit.simulators.envs.user import UserSimulator

__all__ = [
    "BfclEnv",
    "CodeEnv",
    "MathEnv",
    "QaEnv",
    "SimulatedEnvironment",
    "Tau2Env",
    "ThermostatEnv",
    "UserSimulator",
]
