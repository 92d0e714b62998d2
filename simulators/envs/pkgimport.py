"""Importing code that ships inside fetched data packages, without their heavy pins.

reasoning-gym and tau2-bench are fetched as data (:func:`slmkit.models.fetch_package`),
never installed: their dependency pins would fight slmkit's. Their *code* is still the
reference (reasoning-gym's generators, tau2's tool implementations), so we import the
parts we need while keeping their package ``__init__`` files, which import everything
(cellpylib, litellm, loguru, ...), from running:

* :func:`bare_package` registers a package module with the right ``__path__`` and no
  ``__init__`` code, so ``import pkg.sub.module`` loads only that module's own imports;
* :func:`shim_modules` installs small stand-ins for framework modules (tau2's
  ``environment.toolkit``, ``loguru``) for the duration of an import.

When the real package *is* importable (installed with its dependencies) callers use it
as is; these helpers only run otherwise.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import threading
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "bare_package",
    "import_from_file",
    "import_lock",
    "importable",
    "on_path",
    "shim_modules",
]

import_lock = threading.RLock()
"""Held while these helpers change ``sys.path``/``sys.modules``."""


def on_path(folder: Path) -> None:
    """Put ``folder`` on ``sys.path`` (once)."""
    entry = str(folder)
    if entry not in sys.path:
        sys.path.append(entry)


def bare_package(name: str, folder: Path) -> types.ModuleType:
    """Register package ``name`` at ``folder`` without running its ``__init__``.

    An already imported module of that name is returned unchanged.
    """
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(folder)]
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(folder)]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent and parent in sys.modules:
        setattr(sys.modules[parent], child, module)
    return module


@contextmanager
def shim_modules(shims: Mapping[str, types.ModuleType]) -> Iterator[None]:
    """Install ``shims`` in ``sys.modules`` for the block, restoring what was there.

    Modules imported inside the block keep their references to the shims, so the shims
    only need to exist while those modules execute their imports.
    """
    saved = {name: sys.modules.get(name) for name in shims}
    sys.modules.update(shims)
    try:
        yield
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


def import_from_file(name: str, path: Path) -> types.ModuleType:
    """Import the module file ``path`` as ``name`` (registered in ``sys.modules``)."""
    existing = sys.modules.get(name)
    if existing is not None:
        return existing
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def importable(name: str) -> bool:
    """Whether ``import name`` works as is (the package and its dependencies)."""
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True
