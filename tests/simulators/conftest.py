"""Fixtures of the simulators tests: a small real index over Wikipedia summaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from slmkit.retrieval import Index
from slmkit.simulators.envs.qa import wiki_documents


@pytest.fixture(scope="session")
def wiki_index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    """The first 12 Wikipedia summaries of the default corpus, really embedded and indexed."""
    folder: Path = tmp_path_factory.mktemp("qa") / "index"
    return Index.build(wiki_documents(12), path=folder)


_QA_TASKS = [
    {
        "id": "q-kubrick",
        "split": "test",
        "question": "Who directed 2001: A Space Odyssey?",
        "answer": ["Stanley Kubrick", "Kubrick"],
        "source_id": "2001: A Space Odyssey",
    },
    {
        "id": "q-seurat",
        "split": "test",
        "question": "Who painted A Sunday Afternoon on the Island of La Grande Jatte?",
        "answer": "Georges Seurat",
        "source_id": "A Sunday Afternoon on the Island of La Grande Jatte",
    },
]


@pytest.fixture()
def qa_tasks() -> list[dict[str, object]]:
    """Two questions over :func:`wiki_index` with their answers and supporting documents."""
    return [dict(t) for t in _QA_TASKS]
