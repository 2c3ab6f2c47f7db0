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
# The gallery of `keras-vae plot`; the manifold and the CVAE pictures need models of their own.
PICTURES := $(DEMO_DIR)/pictures

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
	for kind in samples reconstructions interpolate traverse latents; do \
		$(BIN)/keras-vae plot $$kind $(DEMO_DIR)/model.keras --output $(PICTURES)/$$kind.png || exit 1; \
	done
	$(BIN)/keras-vae train --latent-dim 2 --epochs 5 --train-split "train[:10000]" --quiet --output $(DEMO_DIR)-2d
	$(BIN)/keras-vae plot manifold $(DEMO_DIR)-2d/model.keras --output $(PICTURES)/manifold.png
	$(BIN)/keras-vae train --model cvae --condition label --epochs 3 --quiet --output $(DEMO_DIR)-cvae-label
	$(BIN)/keras-vae plot samples $(DEMO_DIR)-cvae-label/model.keras --output $(PICTURES)/classes.png
	$(BIN)/keras-vae train --model cvae --condition top-half --prior learned --epochs 3 --quiet --output $(DEMO_DIR)-cvae-top-half
	$(BIN)/keras-vae plot samples $(DEMO_DIR)-cvae-top-half/model.keras --output $(PICTURES)/completions.png

# One worker per core (pytest-xdist); a file's tests stay on one worker, so its
# module fixtures (trained models, exports) are made once. Files go out in
# collection order, the longest first (tests/conftest.py), so both workers end together.
test: install
	$(BIN)/python -m pytest -q -n auto --dist loadfile --no-loadscope-reorder

# The tests marked slow (long training runs, the benchmark scripts), which `make test` leaves
# out; about 16 minutes on 2 cores, with workers as `make test` has them.
test-slow: install
	$(BIN)/python -m pytest -q -m slow -n auto --dist loadfile

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
