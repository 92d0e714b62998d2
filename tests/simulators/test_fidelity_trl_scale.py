"""Fidelity measures, the TRL environment_factory adapter, and the optional Ray backend."""

from __future__ import annotations

import importlib.util
import inspect

import pytest

from slmkit.models import BackendUnavailableError, ChatModel
from slmkit.simulators import (
    SimulatedEnvironment,
    SimulationError,
    fidelity_markdown,
    load_env,
    measure_fidelity,
)
from slmkit.simulators.fidelity import leaf_agreement
from slmkit.simulators.trl import trl_dataset, trl_environment_factory


def test_leaf_agreement() -> None:
    real = {"id": "#W1", "items": [{"price": 10.0, "name": "Mug"}], "status": "pending"}
    assert leaf_agreement(real, real) == 1.0
    assert leaf_agreement(real, {"id": "#W1", "items": [{"price": 10, "name": "mug"}]}) == 0.75
    assert leaf_agreement("user_1", {"user_id": "user_1"}) == 1.0
    assert leaf_agreement("user_1", {"user_id": "someone"}) == 0.0


@pytest.mark.slow
def test_fidelity_of_the_simulator_against_real_tau2_retail(smollm: ChatModel) -> None:
    real = load_env("tau2-retail", split="test")
    sim = SimulatedEnvironment.from_environment(
        real, model=smollm, allow_errors=False, max_output_tokens=128
    )
    report = measure_fidelity(real, sim, real.tasks(limit=1).take(1), max_calls=2)
    assert report.calls == 2 and report.tasks == 1
    assert report.schema_valid_rate is not None and report.error_agreement_rate is not None
    assert report.real_conflicts == 0  # the measure finds no conflict in real data
    assert "schema-valid rate" in fidelity_markdown(report)


def test_trl_adapter_exposes_exactly_the_tools_reset_and_get_reward() -> None:
    from transformers.utils import get_json_schema

    factory = trl_environment_factory("math:gsm8k")
    env = factory()
    public = sorted(
        n for n, _ in inspect.getmembers(type(env), inspect.isfunction) if not n.startswith("_")
    )
    assert public == ["calculator", "final_answer", "get_reward", "python", "reset"]
    schema = get_json_schema(env.calculator)  # what TRL renders into the prompt
    assert schema["function"]["name"] == "calculator"
    assert schema["function"]["parameters"]["required"] == ["expression"]
    rows = trl_dataset("math:gsm8k", split="test", limit=2)
    assert rows[0]["prompt"][0]["role"] == "user" and rows[0]["task_id"] == "gsm8k-0000"
    assert env.reset(**rows[0]) is None
    assert env.calculator(expression="7 * 6") == "42"
    env.final_answer(answer="10")
    assert env.get_reward() == 1.0
    env.reset(**rows[0])
    env.final_answer(answer="11")
    assert env.get_reward() == 0.0
    with pytest.raises(SimulationError, match="tools per task") as err:
        trl_environment_factory("bfcl")
    assert err.value.hint and "fixed-tool" in err.value.hint


@pytest.mark.skipif(importlib.util.find_spec("ray") is not None, reason="ray is installed")
def test_ray_backend_says_how_to_install_it() -> None:
    from slmkit.simulators.scale import RayDataModel

    with pytest.raises(BackendUnavailableError) as info:
        RayDataModel("Qwen/Qwen2.5-1.5B-Instruct")
    assert info.value.hint is not None and "slmkit[ray]" in info.value.hint
