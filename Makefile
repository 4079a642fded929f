# medbench: every target sets up .venv first, so a fresh clone needs only `make run` / `make test`.
#
# GPU users: choose the torch build before the first install, e.g.
#   make install TORCH_SPEC="torch==2.13.0" TORCH_INDEX=https://download.pytorch.org/whl/cu128
# The default takes the CPU build (DESIGN §9); nothing else may pull another torch.
# The elastix extra (the second registration engine, ~1 min of ITK wheels) is installed so that
# notebook 02 and its tests compare both engines; `pip install medbench` alone leaves it out.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.medbench-installed
PROFILE ?= smoke
NOTEBOOKS ?=
PYTEST_ARGS ?=
LAB_ARGS ?=

.PHONY: install run test lint unit nbval notebooks lab test-browser bench clean-reports help

help:
	@echo "make run        execute every notebook (profile $(PROFILE)) into reports/ and build reports/index.html"
	@echo "make test       lint (ruff, mypy) + unit tests + nbval regression of every notebook"
	@echo "make notebooks  re-execute notebooks in place at the smoke profile (refresh committed outputs)"
	@echo "make lab        JupyterLab on 127.0.0.1 with the 'medbench' kernel (LAB_ARGS=... passed to jupyter lab)"
	@echo "make test-browser  every notebook through JupyterLab in headless Chromium (slow)"
	@echo "make bench      run the benchmarks at their default size"

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/python -m pip install --quiet -e ".[dev,elastix]"
	$(BIN)/python -m ipykernel install --sys-prefix --name medbench --display-name "medbench" >/dev/null
	$(BIN)/python tools/sysdeps.py
	@touch $@

run: $(STAMP)
	$(BIN)/medbench run --profile $(PROFILE) $(NOTEBOOKS)

lint: $(STAMP)
	$(BIN)/ruff check medbench tests tools
	$(BIN)/mypy

# Tests run as separate pytest processes (one per test area and one per notebook's nbval), TEST_JOBS at a time
# (default: the CPUs, at most 4; TEST_JOBS=1 runs them one after another). tools/test_jobs.py says why.
TEST_JOBS ?=
# phantom cohorts generate two cases at a time in the tests and notebooks (medbench.data.phantom.cohort)
export MEDBENCH_PHANTOM_WORKERS ?= 2
TEST_RUN = $(BIN)/python tools/test_jobs.py $(if $(TEST_JOBS),--jobs $(TEST_JOBS))
unit: $(STAMP)
	$(TEST_RUN) --only unit $(PYTEST_ARGS)

nbval: $(STAMP)
	$(TEST_RUN) --only nbval $(PYTEST_ARGS)

test: $(STAMP)
	$(BIN)/ruff check medbench tests tools
	$(BIN)/mypy
	$(TEST_RUN) $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(BIN)/medbench notebooks $(NOTEBOOKS)

# Binds to 127.0.0.1, adds --allow-root only as root, prints the URL; e.g. make lab LAB_ARGS="--no-browser --port=9000"
lab: $(STAMP)
	$(BIN)/python tools/lab.py $(LAB_ARGS)

# Every notebook through JupyterLab in headless Chromium (make test runs only the light ones).
test-browser: $(STAMP)
	MEDBENCH_BROWSER_NOTEBOOKS=all $(BIN)/python -m pytest tests/browser -p no:cacheprovider $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/medbench bench all

clean-reports:
	find reports -mindepth 1 -maxdepth 1 ! -name README.md ! -name baselines -exec rm -rf {} +
