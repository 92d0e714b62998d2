"""Append-only JSONL that survives ``kill -9``: one atomic write per record, torn tail repaired.

Collection runs for hours and gets killed (preemption, OOM, Ctrl-C twice). The output
must never hold half a record that a trainer then chokes on, and a re-run must know
exactly which tasks are finished. So:

* a record is one line, written with a single ``os.write`` of the whole encoded line on
  an ``O_APPEND`` descriptor, then ``fsync``: it is on disk completely, or (a kill in the
  middle of the write) it is the file's last, unterminated line;
* :meth:`AppendLog.recover` reads every complete line and truncates an unterminated
  tail, so the next append starts on a line boundary. A complete line that is not JSON
  is real corruption (not a torn write) and is reported, never silently dropped.

One process writes a log at a time (the caller holds :attr:`AppendLog.lock` across
threads); concurrent *processes* on one file are not supported.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from slmkit.simulators.errors import SimulationError

__all__ = ["AppendLog"]


class AppendLog:
    """An append-only JSONL file of dict records (see the module docs)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock = threading.Lock()
        self._fd: int | None = None
        self.repaired_bytes = 0
        """Bytes of a torn last line that :meth:`recover` removed."""

    def recover(self) -> list[dict[str, Any]]:
        """Every complete record; an unterminated last line is cut off the file."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        if end < len(data):
            self.repaired_bytes = len(data) - end
            os.truncate(self.path, end)
            data = data[:end]
        records: list[dict[str, Any]] = []
        for n, line in enumerate(data.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SimulationError(
                    f"{self.path}:{n} is a complete line but not JSON ({exc.msg})",
                    hint="the file was edited or corrupted; fix or remove that line and re-run",
                ) from exc
            if isinstance(obj, dict):
                records.append(obj)
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one line, atomically, and fsync it."""
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self.lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            written = os.write(self._fd, line)
            if written != len(line):  # a regular file only writes short when the disk is full
                raise SimulationError(
                    f"short write to {self.path} ({written} of {len(line)} bytes)",
                    hint="free disk space; the torn line is repaired on the next run",
                )
            os.fsync(self._fd)

    def close(self) -> None:
        with self.lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> AppendLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
