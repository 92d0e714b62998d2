"""Collection and evaluation on Ray Data: more replicas than one process holds.

``collect(CollectConfig(..., backend="ray", replicas=R, workers=W))`` (``agentctl
collect/eval --backend ray``) runs the pending tasks as a Ray Dataset mapped over ``R``
actors. Each actor is one replica: it loads the model once (sized for ``W`` concurrent
episodes, :func:`~slmkit.models.batching_options`) and runs each batch of ``W`` tasks in
``W`` threads with their own environments, so their model calls decode together, as a
local run's do. What comes back is each task's trajectory and ledger entry; the driver
(this process) writes them with the same :class:`~slmkit.simulators.jsonl.AppendLog`\\ s
as a local run, so the outputs, the ledger and ``kill -9``/resume behave the same:
a task is written once, when its result reaches the driver, and a killed run resumes
with the tasks that never did.

``ray.init()`` starts a local Ray instance, or joins the cluster ``RAY_ADDRESS`` names
(every node needs slmkit installed, and the model where the spec points).
``replica_gpus`` reserves GPUs per replica for GPU models.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slmkit.agents import Trajectory
from slmkit.models import BackendUnavailableError
from slmkit.simulators.base import Task, jsonable
from slmkit.simulators.episodes import CollectConfig, TaskRunner, load_agent_model

__all__ = ["EpisodeReplica", "run_on_ray"]


class EpisodeReplica:
    """A Ray actor: one model, ``workers`` episode threads; maps task batches to results."""

    def __init__(self, config: dict[str, Any], workers: int) -> None:
        cfg = CollectConfig.model_validate(config)
        self.runner = TaskRunner(cfg, load_agent_model(cfg, workers))
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        tasks = [json.loads(str(t)) for t in batch["task"]]
        results = list(self.pool.map(self.runner.run, tasks))
        return {
            "trajectory": [traj.model_dump_json() for traj, _ in results],
            "entry": [json.dumps(entry) for _, entry in results],
        }


def run_on_ray(
    config: CollectConfig, todo: list[Task], workers: int
) -> Iterator[tuple[Trajectory, dict[str, Any]]]:
    """Each task's (trajectory, ledger entry), as the replicas finish them."""
    if not todo:
        return
    if importlib.util.find_spec("ray") is None:
        raise BackendUnavailableError(
            "the ray backend needs Ray Data", hint="pip install 'slmkit[ray]'"
        )
    import ray
    import ray.data

    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the collection shows its own
    rows = [{"task": json.dumps(jsonable(dict(t)))} for t in todo]
    results = ray.data.from_items(rows).map_batches(
        EpisodeReplica,
        fn_constructor_kwargs={"config": config.model_dump(mode="json"), "workers": workers},
        batch_size=workers,
        compute=ray.data.ActorPoolStrategy(size=config.replicas),
        num_gpus=config.replica_gpus or None,
    )
    for row in results.iter_rows():
        yield Trajectory.model_validate_json(row["trajectory"]), json.loads(row["entry"])
