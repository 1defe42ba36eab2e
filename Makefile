# `make train`: set up and run the main job. `make test`: set up and run the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.deeprnn-installed
OUT ?= runs/groove

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
	$(PY) examples/train_groove.py --out $(OUT) $(ARGS)
	$(PY) examples/generate.py --checkpoint $(OUT)/best.npz --out $(OUT)/generated.mid

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
