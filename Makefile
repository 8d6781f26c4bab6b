# `make demo` and `make test` each create the virtual environment when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-gpu docs lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: the CPU wheel; anything unpinned would pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/eapu compare denoise --steps 300 --out runs/demo

# The documentation is built strictly first: a broken reference fails the tests. Then the
# suite, then the GPU's Triton kernel under triton's interpreter (its own environment).
test: docs
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-gpu

# The GPU's Triton kernel (tests/test_triton_step.py) on the CPU under triton's interpreter, in
# a virtual environment of its own (triton is about 1 GB installed), with the triton release
# torch 2.13.0's CUDA wheels run. TRITON_INTERPRET must be set before Python starts.
GPU_VENV ?= build/venv-gpu
GPU_PY := $(GPU_VENV)/bin/python
GPU_STAMP := $(GPU_VENV)/.installed

$(GPU_STAMP): pyproject.toml
	test -x $(GPU_PY) || python3 -m venv $(GPU_VENV)
	$(GPU_PY) -m pip install -q torch==2.13.0 triton==3.7.1
	$(GPU_PY) -m pip install -q -e ".[gpu]" "pytest>=7"
	touch $(GPU_STAMP)

test-gpu: $(GPU_STAMP)
	TRITON_INTERPRET=1 $(GPU_PY) -m pytest -q tests/test_triton_step.py

# docs/ and the docstrings -> site/ (open site/index.html); strict: any warning fails.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples docs/_ext
	$(VENV)/bin/ruff format --check src tests benchmarks examples docs/_ext
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) benchmarks/optim_step.py

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
