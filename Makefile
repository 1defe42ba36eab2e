# `make train`: set up and run the main job. `make test`: set up and run the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEEPRNN := $(VENV)/bin/deeprnn
# One stamp per extra installed: `make train` needs only the music extra, `make test` the test extra (JAX and
# Keras for the parity tests, ~410 MB), so `make train` then `make test` installs the rest then.
MUSIC_STAMP := $(VENV)/.deeprnn-music
TEST_STAMP := $(VENV)/.deeprnn-test
DOCS_STAMP := $(VENV)/.deeprnn-docs
# `make train` is the README's recipe: the drums recipe for BUDGET minutes of training on the CPU (one BLAS thread
# and two batch shards, which the program sets itself: --blas-threads, --threads), SEED for weights, shuffles and
# sampling; ARGS go to `deeprnn train`.
OUT ?= runs/groove
BUDGET ?= 15
SEED ?= 0
# a WAV beside the MIDI file only where the fluidsynth program exists
WAV := $(if $(shell command -v fluidsynth 2>/dev/null),--wav,)

.PHONY: setup test test-slow test-all train generate bench clean docs docs-serve

$(MUSIC_STAMP) $(TEST_STAMP) $(DOCS_STAMP): $(VENV)/.deeprnn-%: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$*]'
	touch $@

setup: $(TEST_STAMP)

test: $(TEST_STAMP)
	OPENBLAS_NUM_THREADS=1 KERAS_BACKEND=jax $(PY) -m pytest -m "not slow" -ra

test-slow: $(TEST_STAMP)
	OPENBLAS_NUM_THREADS=1 KERAS_BACKEND=jax $(PY) -m pytest -m slow -ra

test-all: $(TEST_STAMP)
	OPENBLAS_NUM_THREADS=1 KERAS_BACKEND=jax $(PY) -m pytest -ra

train: $(MUSIC_STAMP)
	DEEPRNN_CALLED_AS="make train" $(DEEPRNN) train --out $(OUT) --time-budget $(BUDGET) --epochs 100 --seed $(SEED) $(ARGS)
	$(DEEPRNN) generate --checkpoint $(OUT)/best.npz --out $(OUT)/generated.mid --seed $(SEED) --include-primer --plot $(WAV)
	$(DEEPRNN) evaluate --checkpoint $(OUT)/best.npz --split test --json $(OUT)/test.json
	@echo
	@echo "== where everything is =="
	@$(DEEPRNN) show $(OUT)

# the docs as a site (mkdocs.yml): built into site/ with every warning an error, or served on 127.0.0.1 only
docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache site
