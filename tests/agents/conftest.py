"""Fixtures of the agent tests: a second copy of the embedded model, a checkpoint path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from slmkit.models import ChatModel, embedded_gguf


@pytest.fixture(scope="session")
def large_model() -> Iterator[ChatModel]:
    """A second copy of the embedded model under another name: the router's "large" one.

    Same weights, so the routing logic (not model quality) is what the tests check.
    """
    from slmkit.models.llamacpp import LlamaCppModel

    model = LlamaCppModel(embedded_gguf("smollm2"), name="smollm2-large")
    yield model
    model.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "runs.sqlite"
