"""Text files in any encoding are read as written, or refused by name: never with U+FFFD."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from slmkit.retrieval import RetrievalError, load_text
from slmkit.retrieval.text_files import read_text_file

LEGACY = (
    "Le café de la gare ouvre à sept heures. Crème brûlée, thé glacé et pâtisseries "
    "sont servis jusqu'à midi; l'été, la terrasse reste ouverte après la fermeture."
)


def test_utf8_is_read_as_is_and_a_bom_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf" + LEGACY.encode("utf-8"))
    assert read_text_file(path) == LEGACY


def test_a_legacy_encoded_file_keeps_every_character(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "menu.txt"
    path.write_bytes(LEGACY.encode("cp1252"))
    with caplog.at_level(logging.WARNING, logger="slmkit.retrieval.text_files"):
        doc = load_text(path)
    assert doc.text == LEGACY  # a quote of "Crème brûlée" can be verified against it
    assert "\ufffd" not in doc.text
    assert "menu.txt is not UTF-8" in caplog.text


def test_a_binary_file_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "image.txt"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(RetrievalError, match=r"image\.txt is not text") as info:
        load_text(path)
    assert "iconv" in (info.value.hint or "")
