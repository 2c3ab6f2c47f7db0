# Two entry points: `make demo` (train -> export -> sample on MNIST) and `make test`.
# Both create the virtual environment they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# The shared MNIST copy is used when present (offline machines); otherwise tfds downloads it.
SHARED_TFDS := $(abspath ../shared/data/tensorflow_datasets)
export TFDS_DATA_DIR ?= $(if $(wildcard $(SHARED_TFDS)),$(SHARED_TFDS),$(HOME)/tensorflow_datasets)
export TF_CPP_MIN_LOG_LEVEL ?= 2
DEMO_DIR ?= runs/mnist-mlp

.PHONY: demo test test-slow lint install

$(BIN)/keras-vae: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/keras-vae

demo: install
	$(BIN)/keras-vae train --dataset mnist --architecture mlp --latent-dim 50 --epochs 3 --output $(DEMO_DIR)
	$(BIN)/keras-vae export $(DEMO_DIR)/model.keras --saved-model saved_models/mnist-mlp --tflite $(DEMO_DIR)/model.tflite
	$(BIN)/keras-vae sample $(DEMO_DIR)/model.keras --num-samples 64 --seed 0 --output $(DEMO_DIR)/samples_seed0.png
	$(BIN)/python export/litert_sampler.py $(DEMO_DIR)/model.tflite --num-samples 64 --seed 0 --output $(DEMO_DIR)/litert_samples_seed0.png

# One worker per core (pytest-xdist); a file's tests stay on one worker, so its
# module fixtures (trained models, exports) are made once.
test: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile

# The tests marked slow (long training runs, the benchmark scripts), which `make test` leaves out.
test-slow: install
	$(BIN)/python -m pytest -q -m slow

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
