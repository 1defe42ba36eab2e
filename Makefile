# `make train`: set up and run the main job. `make test`: set up and run the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEEPRNN := $(VENV)/bin/deeprnn
STAMP := $(VENV)/.deeprnn-installed
# `make train` is the README's recipe: the drums recipe for BUDGET minutes of training on the CPU (one BLAS thread,
# which the program sets itself: --blas-threads), SEED for weights, shuffles and sampling; ARGS go to `deeprnn train`.
OUT ?= runs/groove
BUDGET ?= 15
SEED ?= 0
# a WAV beside the MIDI file only where the fluidsynth program exists
WAV := $(if $(shell command -v fluidsynth 2>/dev/null),--wav,)

.PHONY: setup test test-slow test-all train generate bench clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

test: $(STAMP)
	OPENBLAS_NUM_THREADS=1 KERAS_BACKEND=jax $(PY) -m pytest -m "not slow" -ra

test-slow: $(STAMP)
	OPENBLAS_NUM_THREADS=1 KERAS_BACKEND=jax $(PY) -m pytest -m slow -ra

test-all: $(STAMP)
	OPENBLAS_NUM_THREADS=1 KERAS_BACKEND=jax $(PY) -m pytest -ra

train: $(STAMP)
	$(DEEPRNN) train --out $(OUT) --time-budget $(BUDGET) --epochs 100 --seed $(SEED) $(ARGS)
	$(DEEPRNN) generate --checkpoint $(OUT)/best.npz --out $(OUT)/generated.mid --seed $(SEED) --include-primer --plot $(WAV)
	$(DEEPRNN) evaluate --checkpoint $(OUT)/best.npz --split test --json $(OUT)/test.json
	@echo
	@echo "== where everything is =="
	@$(DEEPRNN) show $(OUT)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
