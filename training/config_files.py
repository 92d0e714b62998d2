"""Config files that ship inside slmkit, found by name.

``training/configs/`` is package data: ``distill.yaml`` (every option of a distillation
run at its default) and ``accelerate/{ddp,fsdp,deepspeed_zero2}.yaml`` (multi-GPU launch
configs). They are in the wheel, so ``agentctl distill --config distill`` works from any
folder, and ``accelerate launch --config_file "$(python -c 'from slmkit.training import
config_file; print(config_file("accelerate/ddp"))')"`` needs no checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from slmkit.models import PathNotFoundError

__all__ = ["CONFIG_DIR", "config_file", "shipped_configs"]

CONFIG_DIR = Path(__file__).with_name("configs")
"""Where the shipped config files are (inside the installed package)."""


def shipped_configs() -> dict[str, Path]:
    """Shipped config files by name: ``distill``, ``accelerate/ddp``, ..."""
    return {
        path.relative_to(CONFIG_DIR).with_suffix("").as_posix(): path
        for path in sorted(CONFIG_DIR.rglob("*.yaml"))
    }


def config_file(name_or_path: str | os.PathLike[str]) -> Path:
    """A config file: an existing path as given, else a shipped config of that name.

    ``distill``, ``distill.yaml`` and ``accelerate/ddp`` name shipped files; a path that
    exists always wins over a shipped name, so a local ``distill.yaml`` is yours.

    Raises:
        PathNotFoundError: neither a file nor a shipped name (the hint lists the names).
    """
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = Path(os.fspath(name_or_path)).as_posix().removesuffix(".yaml")
    if name in shipped:
        return shipped[name]
    raise PathNotFoundError(
        f"no config file {os.fspath(name_or_path)!r}, and no shipped config of that name",
        hint="give a YAML file's path, or a shipped config: " + ", ".join(shipped),
    )
