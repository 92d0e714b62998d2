"""The preflight guard: a child that really dies on a signal gives a message, not a crash."""

from __future__ import annotations

from slmkit.models.preflight import REBUILD_COMMAND, cpu_flags, llama_libraries, run_preflight

# Reads address 0: the child really dies with SIGSEGV, as a llama.cpp built for
# instructions the OS does not allow does at its first matrix multiply.
_SEGFAULT = "import ctypes; ctypes.string_at(0)"
_SIGILL = "import os, signal; os.kill(os.getpid(), signal.SIGILL)"


def test_a_segfaulting_child_is_named_with_library_flags_and_fix() -> None:
    result = run_preflight(_SEGFAULT)
    assert not result.ok
    assert result.signal_name == "SIGSEGV"
    assert result.returncode == -11
    assert "died with SIGSEGV (signal 11)" in result.message
    assert REBUILD_COMMAND in result.message
    lib = next(p for p in llama_libraries() if "ggml-cpu" in p.name)
    assert str(lib) in result.message
    assert "avx2" in cpu_flags()  # the x86-64 machines this project runs on
    assert "this CPU advertises: " + " ".join(cpu_flags()) in result.message


def test_an_illegal_instruction_is_named_too() -> None:
    result = run_preflight(_SIGILL)
    assert (result.ok, result.signal_name) == (False, "SIGILL")


def test_a_child_that_fails_without_a_signal_shows_its_error() -> None:
    result = run_preflight("raise SystemExit('no model here')")
    assert not result.ok and result.signal_name is None
    assert "exit code 1" in result.message and "no model here" in result.message


def test_the_embedded_model_passes_with_this_build() -> None:
    result = run_preflight()
    assert result.ok, result.message
    assert result.message.startswith("ok ")
