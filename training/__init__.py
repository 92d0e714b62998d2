"""Training small agents: SFT on agent trajectories, distillation, and RL with GRPO.

::

    from slmkit.training import DistillConfig, distill, sft, rl

    result = distill(DistillConfig())           # teacher -> verified runs -> student
    print(result.report.read_text())             # before/after on held-out tasks

    path = sft("runs.jsonl", model="smollm2", out_dir="student")   # one SFT run
    rl(RlConfig(env="bfcl:simple", model=str(path)))               # GRPO on top

Training text is exactly what the agent reads and writes (:mod:`slmkit.training.data`),
the loss covers the agent's own tokens only, every long run resumes, and the student
is measured with the same metrics as ``agentctl eval``.
"""

from slmkit.training.config import STAGES, DistillConfig, RlConfig, SftConfig
from slmkit.training.config_files import config_file, shipped_configs
from slmkit.training.distill import DistillResult, distill, distill_status
from slmkit.training.errors import TrainingError
from slmkit.training.export import export_gguf
from slmkit.training.rl import RL_STAGES, RlResult, rl
from slmkit.training.sft import agent_token_loss, sft
from slmkit.training.stages import CONFIG_FILE, RunFolder
from slmkit.training.student import StudentPromptModel, load_student

__all__ = [
    "CONFIG_FILE",
    "RL_STAGES",
    "STAGES",
    "DistillConfig",
    "DistillResult",
    "RlConfig",
    "RlResult",
    "RunFolder",
    "SftConfig",
    "StudentPromptModel",
    "TrainingError",
    "agent_token_loss",
    "config_file",
    "distill",
    "distill_status",
    "export_gguf",
    "load_student",
    "rl",
    "sft",
    "shipped_configs",
]
