"""The sandbox's cgroups: v2 (a delegated subtree) where the host offers it, else v1.

What runs depends on what the host has, read from ``/proc/self/mountinfo`` and the
v2 ``cgroup.controllers`` file; a test that needs a v2 ``memory``/``pids`` controller
skips only where the host's v2 hierarchy does not offer one, and says so. (This
project's machines are hybrid: memory and pids are bound to v1 hierarchies and the v2
hierarchy mounted at ``/sys/fs/cgroup/unified`` offers neither, so there the v1 tests
run and the v2 ones skip.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmkit.tools.sandbox import PythonSandbox
from slmkit.tools.sandbox._cgroups import CONTROLLERS, delegate_v2, v2_base


def _v2_offered() -> tuple[Path | None, set[str]]:
    """The host's own v2 cgroup and the memory/pids controllers it offers."""
    base = v2_base()
    if base is None:
        return None, set()
    offered = set((base / "cgroup.controllers").read_text().split()) & set(CONTROLLERS)
    return base, offered


def _needs_v2(*controllers: str) -> None:
    base, offered = _v2_offered()
    if base is None:
        pytest.skip("this host mounts no cgroup v2 hierarchy")
    lacking = set(controllers) - offered
    if lacking:
        pytest.skip(f"this host's cgroup v2 cgroup {base} offers no {'/'.join(sorted(lacking))}")
    if not os.access(base / "cgroup.subtree_control", os.W_OK):
        pytest.skip(f"{base} is not delegated to uid {os.geteuid()}")


@pytest.fixture
def sb() -> Iterator[PythonSandbox]:
    with PythonSandbox(timeout_s=5, memory_mb=192, max_processes=32) as box:
        yield box


def test_each_controller_comes_from_the_hierarchy_that_offers_it(sb: PythonSandbox) -> None:
    report = sb.isolation
    base, offered = _v2_offered()
    assert set(report.cgroup_versions) == {
        c for c, on in (("memory", report.cgroup_memory), ("pids", report.cgroup_pids)) if on
    }
    for controller, version in report.cgroup_versions.items():
        assert version in ("v1", "v2")
        if version == "v2":
            assert controller in offered
    for controller in set(CONTROLLERS) - offered:
        assert report.cgroup_versions.get(controller, "v1") == "v1"  # v2 cannot have it
    if report.cgroup_memory and report.cgroup_pids:
        assert f"memory({report.cgroup_versions['memory']})" in report.summary()
    else:  # what is missing, and why v2 did not supply it, is in the warnings
        assert any("not by a cgroup" in w for w in report.warnings)
        if base is not None:
            assert any(w.startswith("cgroup v2 not used: ") for w in report.warnings)


def test_v2_delegation_says_what_the_host_lacks() -> None:
    base, offered = _v2_offered()
    if base is None:
        pytest.skip("this host mounts no cgroup v2 hierarchy")
    found = delegate_v2(base)
    if not offered:
        assert found.parent is None and found.note is not None
        assert "offers no memory/pids controller" in found.note
    else:
        assert (found.parent is not None) != (found.note is not None)
        assert found.controllers <= offered


def test_v2_limits_hold(sb: PythonSandbox) -> None:
    _needs_v2("memory", "pids")
    report = sb.isolation
    assert report.cgroup_versions == {"memory": "v2", "pids": "v2"}, report.warnings
    bomb = sb.run("hog = []\nwhile True:\n    hog.append(bytearray(10**7))")
    assert bomb.killed and bomb.error is not None and "MemoryError" in bomb.error
    assert "kernel killed it" in bomb.error  # counted from memory.events
    forks = sb.run("import os\nwhile True:\n    os.fork()")
    assert forks.error is not None and "BlockingIOError" in forks.error
    assert sb.run("print(6 * 7)").stdout == "42\n"


def test_a_host_alone_in_its_v2_cgroup_moves_into_a_leaf_to_delegate(tmp_path: Path) -> None:
    """In a scratch cgroup of its own, a fresh host process delegates it; with a second
    process beside it, it refuses and says why (v2's no-internal-processes rule)."""
    _needs_v2("pids")
    base, _ = _v2_offered()
    assert base is not None
    with PythonSandbox() as box:  # delegates the host's own cgroup, as any sandbox does
        warnings = box.isolation.warnings
    if "pids" not in (base / "cgroup.subtree_control").read_text().split():
        pytest.skip(f"the host's cgroup {base} could not be delegated: {warnings}")
    scratch = base / f"slmkit-test-{os.getpid()}"
    script = textwrap.dedent(
        f"""
        import os, subprocess, sys
        from pathlib import Path
        from slmkit.tools.sandbox._cgroups import delegate_v2
        scratch = Path({str(scratch)!r})
        (scratch / "cgroup.procs").write_text(str(os.getpid()))
        if sys.argv[1] == "crowded":
            other = subprocess.Popen(["sleep", "30"])
            found = delegate_v2(scratch, ["pids"])
            other.kill()
            print(found.parent, found.note)
        else:
            found = delegate_v2(scratch, ["pids"])
            own = open("/proc/self/cgroup").read().split("::")[-1].strip()
            print(found.parent, os.getpid(), own)
        """
    )
    scratch.mkdir()
    try:
        for case in ("alone", "crowded"):
            if case == "crowded":
                _reset(scratch)
            out = subprocess.run(
                [sys.executable, "-c", script, case], capture_output=True, text=True, check=True
            ).stdout.split()
            if case == "alone":
                assert out[0] == str(scratch) and out[2].endswith(f"/slmkit-host-{out[1]}")
                assert "pids" in (scratch / "cgroup.subtree_control").read_text()
            else:
                assert out[0] == "None" and "holds 2 processes" in " ".join(out)
    finally:
        _reset(scratch)
        scratch.rmdir()


def _reset(scratch: Path) -> None:
    """Empty a scratch cgroup: its leaves removed, its controllers off again."""
    for leaf in scratch.iterdir():
        if leaf.is_dir():
            leaf.rmdir()
    (scratch / "cgroup.subtree_control").write_text("-pids")
