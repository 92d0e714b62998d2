"""The student exports to GGUF and llama.cpp runs it like transformers does."""

from __future__ import annotations

from pathlib import Path

import pytest

from slmkit.models import load_model
from slmkit.training import export_gguf


@pytest.mark.slow
def test_export_round_trip_matches_transformers(tmp_path: Path, student_dir: Path) -> None:
    path = export_gguf(student_dir, tmp_path / "student-f16.gguf")
    assert path.stat().st_size > 100_000_000
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    exported = load_model(f"llamacpp:{path}", cache=False)
    reference = load_model(f"transformers:{student_dir}", cache=False)
    a = exported.chat(messages, max_tokens=12).text
    b = reference.chat(messages, max_tokens=12).text
    exported.close()
    reference.close()
    assert "Paris" in a
    assert a.split()[:4] == b.split()[:4]
