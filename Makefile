# Common tasks. `make serve` and `make test` are the two commands a fresh machine needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
MODELS_ROOT ?= models
# The model for requests that name none: en-fr among the bundled models; elsewhere the service's own default.
DEFAULT_MODEL ?= $(if $(filter models,$(MODELS_ROOT)),en-fr)
PAIR ?= en-fr
RESULTS ?= results
INTRA_OP_THREADS ?= 1
CHECKPOINT ?=
# make gpu-check: its own environment, since onnxruntime-gpu and onnxruntime are one Python module
CUDA_VENV ?= .venv-cuda
CUDA_PY := $(CUDA_VENV)/bin/python
GPU_CHECK_SENTENCES ?= 64

.PHONY: lock help install serve test lint typecheck proto train export pipeline bench gpu-check clean
.DEFAULT_GOAL := help

help: ## list the targets and what they do
	@awk 'BEGIN {FS = ":[^#]*## "} /^[a-zA-Z_-]+:[^#]*## / {printf "  %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[train,dev,client,bench]'
	touch $@

install: $(VENV)/.installed ## create the virtual environment with every extra

serve: install ## serve every model under $(MODELS_ROOT) over gRPC (port 50051), HTTP (8080; the page at /), metrics on 9400
	MT_MODELS_ROOT=$(MODELS_ROOT) MT_DEFAULT_MODEL=$(DEFAULT_MODEL) $(PY) -m service

test: install ## the whole test suite (what CI runs; the CUDA tests are make gpu-check's)
	$(PY) -m pytest -q --durations=15 -m "not cuda"

lint: install ## ruff check and ruff format --check
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: install ## mypy on service/
	$(PY) -m mypy

proto: install ## regenerate service/api from proto/ (committed; tests/service/test_proto.py checks they match)
	PYTHON=$(PY) proto/generate.sh

lock: install ## recompile the image's hash-checked dependency locks (deploy/requirements) from pyproject.toml
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml deploy/requirements/build.in --universal --python-version 3.11 \
		--generate-hashes --quiet -o deploy/requirements/cpu.txt
	$(VENV)/bin/uv pip compile pyproject.toml deploy/requirements/build.in deploy/requirements/cuda.in \
		--no-emit-package onnxruntime --universal --python-version 3.12 --generate-hashes --quiet \
		-o deploy/requirements/cuda.txt

bench: install ## engine benchmark, load sweep, online targets under $(RESULTS)/; CHECKPOINT=... adds PyTorch, CTranslate2
	$(PY) -m bench.engine_bench --model-dir $(MODELS_ROOT)/$(PAIR) $(if $(CHECKPOINT),--checkpoint $(CHECKPOINT)) \
		--intra-op-threads $(INTRA_OP_THREADS) --output $(RESULTS)/engine
	$(PY) -m bench.load --models-root $(MODELS_ROOT) --model $(PAIR) --concurrency 1 8 32 64 --requests 1000 \
		--server-env MT_INTRA_OP_THREADS=$(INTRA_OP_THREADS) --output $(RESULTS)/online
	$(PY) -m bench.targets --models-root $(MODELS_ROOT) --model $(PAIR) --intra-op-threads $(INTRA_OP_THREADS) \
		--output $(RESULTS)/online

# onnxruntime comes in as a base dependency; removing it removes the files it shares with onnxruntime-gpu, which
# is then put back alone (its CUDA and cuDNN wheels stay installed).
$(CUDA_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_PY) -m pip install --quiet --upgrade pip
	$(CUDA_PY) -m pip install --quiet -e '.[train,cuda]' 'pytest>=8' 'pytest-timeout>=2.3'
	GPU_PACKAGE=$$($(CUDA_PY) -m pip freeze | grep -i '^onnxruntime[-_]gpu==') && \
		$(CUDA_PY) -m pip uninstall --quiet -y onnxruntime onnxruntime-gpu && \
		$(CUDA_PY) -m pip install --quiet --no-deps "$$GPU_PACKAGE"
	touch $@

gpu-check: ## on an NVIDIA GPU (own environment $(CUDA_VENV)): CUDA tests, engine benchmark CUDA beside CPU, load test -> $(RESULTS)/gpu-check/
	@$(PYTHON) -m bench.gpu
	@$(MAKE) --no-print-directory $(CUDA_VENV)/.installed
	LD_LIBRARY_PATH="$$($(CUDA_PY) -m bench.gpu --library-path)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
		$(CUDA_PY) -m bench.gpu_check --output $(RESULTS)/gpu-check --sentences $(GPU_CHECK_SENTENCES) \
		$(if $(CHECKPOINT),--checkpoint $(CHECKPOINT))

train: install ## train a model from a config: make train CONFIG=model/configs/multi30k_en_fr.yaml
	$(PY) -m model train --config $(CONFIG)

# make pipeline PAIR=en-fr: the bundled config of a pair, into $(MODELS_ROOT)/en-fr. make pipeline CONFIG=my.yaml: any
# config, into $(MODELS_ROOT)/<source>-<target> of its data section (or $(MODELS_ROOT)/$(PAIR) when PAIR is given too).
PIPELINE_CONFIG = $(or $(CONFIG),model/configs/multi30k_$(subst -,_,$(PAIR)).yaml)
PIPELINE_OUTPUT = $(if $(and $(CONFIG),$(filter file,$(origin PAIR))),,--output $(MODELS_ROOT)/$(PAIR))

pipeline: install ## tokenizer, training, export, evaluation, model card: make pipeline PAIR=en-fr | CONFIG=my.yaml [RUN_DIR=an existing run]
	$(PY) -m model pipeline --config $(PIPELINE_CONFIG) --models-root $(MODELS_ROOT) $(PIPELINE_OUTPUT) \
		$(if $(RUN_DIR),--run-dir $(RUN_DIR))

export: install ## export a checkpoint to a model directory: make export CHECKPOINT=runs/multi30k_en_fr/best.pt PAIR=en-fr
	@test -n "$(CHECKPOINT)" || { echo "usage: make export CHECKPOINT=path/to/checkpoint.pt [PAIR=en-fr]"; exit 2; }
	$(PY) -m model.export --checkpoint $(CHECKPOINT) --output $(MODELS_ROOT)/$(PAIR)

clean: ## remove the virtual environment and the tools' caches
	rm -rf $(VENV) $(CUDA_VENV) .pytest_cache .mypy_cache .ruff_cache
