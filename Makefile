# CARE Review Studio: the two commands of the README, and their setup.
#   make app    set up (once) and launch the review app on the embedded default (SmolLM2, sample sessions)
#   make test   set up (once) and run the default test suite (browser tests included)
#   make test-slow   the tests marked slow (minutes on 2 cores)
#   make bench  the CPU benchmarks (see README)
PY      ?= python3
VENV    := .venv
PYTHON  := $(VENV)/bin/python
STAMP   := $(VENV)/.care-setup-done
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export GRADIO_ANALYTICS_ENABLED := False

.PHONY: setup app test test-slow bench browser

$(STAMP): requirements.txt scripts/setup.sh
	$(PY) -m venv $(VENV)
	PYTHON=$(PYTHON) bash scripts/setup.sh
	touch $(STAMP)

setup: $(STAMP)

browser:
	@command -v chromium >/dev/null 2>&1 || bash scripts/install_chromium.sh

app: setup
	$(PYTHON) annotate_app.py $(ARGS)

test: setup browser
	$(PYTHON) -m pytest -m "not slow" $(ARGS)

test-slow: setup browser
	$(PYTHON) -m pytest -m slow $(ARGS)

bench: setup
	$(PYTHON) -m benchmarks.store --json
	$(PYTHON) -m benchmarks.inference --json
	$(PYTHON) -m benchmarks.app --json
