# `make demo` and `make test` each create the virtual environment when it is missing.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test docs lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first and pinned: the CPU wheel; anything unpinned would pull a CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/eapu compare denoise --steps 300 --out runs/demo

# The documentation is built strictly first: a broken reference fails the tests.
test: docs
	$(PY) -m pytest -q

# docs/ and the docstrings -> site/ (open site/index.html); strict: any warning fails.
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --quiet

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples docs/_ext
	$(VENV)/bin/ruff format --check src tests benchmarks examples docs/_ext
	$(VENV)/bin/mypy src

bench: $(STAMP)
	$(PY) benchmarks/optim_step.py

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
