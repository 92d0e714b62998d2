"""The package-data fetcher on the real bfcl-eval wheel: fetched once, then read from cache.

The first run downloads the pinned bfcl-eval wheel (about 2 MB) once into the cache
(``$SLMKIT_CACHE`` or ``~/.cache/slmkit``); later runs read it from there.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from slmkit.models import pkgdata
from slmkit.models.errors import DataError
from slmkit.models.pkgdata import KNOWN_PACKAGES, cache_dir, fetch_package, package_file


def _no_pip(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError(f"pip must not run here: {args!r}")


def test_fetch_package_once_then_from_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    root = fetch_package("bfcl-eval")  # downloads on the very first run only
    version = KNOWN_PACKAGES["bfcl-eval"]
    assert root == cache_dir() / "pkgdata" / f"bfcl-eval-{version}"
    marker = json.loads((root / ".slmkit-pkgdata.json").read_text())
    assert marker["version"] == version and marker["file"].endswith(".whl")

    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert fetch_package("bfcl_eval") == root  # any spelling of the name
    assert fetch_package("bfcl-eval", version) == root
    found = package_file("bfcl-eval", "bfcl_eval/data/BFCL_v*_simple_python.json")
    assert found.parent.name == "data" and found.is_file()


def test_package_file_no_match_or_ambiguous_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    fetch_package("bfcl-eval")
    monkeypatch.setattr(subprocess, "run", _no_pip)
    with pytest.raises(DataError, match="no file matches"):
        package_file("bfcl-eval", "bfcl_eval/data/nothing_like_this.json")
    with pytest.raises(DataError, match="files match") as err:
        package_file("bfcl-eval", "bfcl_eval/data/BFCL_v*.json")
    assert err.value.hint


def test_unpinned_fetch_reuses_recorded_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))
    folder = tmp_path / "pkgdata" / "some-data-pkg-1.2"
    folder.mkdir(parents=True)
    (tmp_path / "pkgdata" / "some-data-pkg.version").write_text("1.2\n")
    monkeypatch.setattr(subprocess, "run", _no_pip)
    assert fetch_package("Some_Data.Pkg") == folder


def test_bad_package_name_raises_with_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subprocess, "run", _no_pip)
    with pytest.raises(DataError, match="not a valid PyPI package name") as err:
        fetch_package("no such package!")
    assert err.value.hint
    with pytest.raises(DataError, match="not a valid version"):
        fetch_package("bfcl-eval", "1.0; rm -rf /")


def test_unknown_package_raises_with_pip_output_and_hint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))
    with pytest.raises(DataError, match="pip could not download") as err:
        fetch_package("slmkit-no-such-package-7f3e9c", "0.0.1")
    assert "slmkit-no-such-package-7f3e9c" in err.value.message
    assert err.value.hint is not None and "SLMKIT_CACHE" in err.value.hint
    assert list((tmp_path / "pkgdata").iterdir()) == []  # no folder, no leftovers


def test_failed_unpack_leaves_no_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch that dies before the end never leaves a folder that looks complete."""
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path))

    def corrupt_download(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        dest = Path(cmd[cmd.index("-d") + 1])
        (dest / "broken_pkg-1.0-py3-none-any.whl").write_bytes(b"not a zip file")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(subprocess, "run", corrupt_download)
    with pytest.raises(DataError, match="could not unpack"):
        fetch_package("broken-pkg", "1.0")
    assert list((tmp_path / "pkgdata").iterdir()) == []
    assert not (tmp_path / "pkgdata" / "broken-pkg-1.0").exists()
    assert pkgdata.cache_dir() == tmp_path
