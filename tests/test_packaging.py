"""The wheel a user installs: package data (configs, prompts, templates) and extras.

Builds the real wheel (``pip wheel --no-deps``, from a copy of the source tree so the
checkout's ``build/`` is left alone) and reads what is in it.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    skip = shutil.ignore_patterns(
        ".git", ".venv", "build", "runs", "tests", "benchmarks", "*.egg-info", "__pycache__"
    )
    shutil.copytree(ROOT, source, ignore=skip)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
           "--disable-pip-version-check", "-q", "-w", str(work / "dist"), str(source)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = (work / "dist").glob("slmkit-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_ships_the_configs_and_the_prompts(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for config in ("distill", "accelerate/ddp", "accelerate/fsdp", "accelerate/deepspeed_zero2"):
        assert f"slmkit/training/configs/{config}.yaml" in names
    for package in ("models", "tools", "retrieval", "agents", "simulators", "training", "apps"):
        assert f"slmkit/{package}/py.typed" in names
    prompts = [
        f"slmkit/{path.relative_to(ROOT).as_posix()}"
        for package in ("models", "tools", "retrieval", "agents", "simulators", "training")
        for path in (ROOT / package).rglob("prompts/*.md")
    ]
    assert "slmkit/simulators/prompts/synth_task.md" in prompts
    assert set(prompts) <= names  # every prompt file the code renders ships
    assert not any(n.startswith(("configs/", "tests/")) for n in names)


def test_the_gpu_extra_installs_what_the_code_calls(wheel: zipfile.ZipFile) -> None:
    (meta_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    meta = email.message_from_bytes(wheel.read(meta_name))
    requires = meta.get_all("Requires-Dist") or []
    gpu = [r for r in requires if 'extra == "gpu"' in r]
    assert any(r.startswith("vllm>=0.11") for r in gpu), gpu  # StructuredOutputsParams
    faiss = [r for r in requires if r.startswith("faiss")]
    assert faiss == ["faiss-cpu>=1.9"], "faiss-gpu is a documented swap, never a second copy"
