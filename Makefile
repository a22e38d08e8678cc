# Everything runs from the project's own virtual environment in .venv/.
# `make test` and `make demo` set it up on a fresh machine (system packages via apt-get).
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
SYSSTAMP := $(VENV)/.system-packages
NP      ?= 2

# Setup installs without compiling bytecode (pip's compile of every file of torch & co. was
# most of the install time here); Python then writes .pyc for the modules actually
# imported, on first use, which needs bytecode writing on even where the environment turns it off.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup system-packages test test-fast bench demo bundles lint clean

setup: $(STAMP)

# CP2K for the DFT reference (issue: quantum reference). Skipped when already present.
$(SYSSTAMP):
	@mkdir -p $(VENV)
	@if ! command -v cp2k.psmp >/dev/null 2>&1; then \
	  echo "installing cp2k (Debian package)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq cp2k >/dev/null; \
	fi
	@touch $@

$(STAMP): pyproject.toml $(SYSSTAMP)
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "setuptools>=68,<81" wheel
	$(PY) -m pip install -q --no-compile -e ".[test,fitsnap]"
	@touch $@

# Tests run in $(NP) pytest-xdist workers, a module at a time (--dist loadscope), so every
# module-scoped fixture (a CP2K run, the contract's potentials) is built once. (xdist_group
# marks with --dist loadgroup grouped nothing under pytest 9.2 + xdist 3.8 here.)
test: setup
	$(PY) -m pytest -q -x -n $(NP) --dist loadscope --durations=10

test-fast: setup
	$(PY) -m pytest -q -x -n $(NP) --dist loadscope -m "not slow"

# all benchmarks -> benchmarks/results.json (commit it), then the README's table from it;
# one alone: $(PY) benchmarks/run.py --only md; do they run at all: ... --quick
bench: setup
	$(PY) benchmarks/run.py --out benchmarks/results.json
	$(PY) benchmarks/run.py --readme

# The main job on the embedded classical reference: data -> descriptors -> sweep of
# per-species networks trained on totals -> transfer through LAMMPS -> the paper's figures.
DEMO := runs/quick
demo: setup
	$(VENV)/bin/mpirun -np $(NP) $(VENV)/bin/aetk sweep --config sweeps/quick.toml --out $(DEMO)
	$(VENV)/bin/mpirun -np $(NP) $(VENV)/bin/aetk transfer --results $(DEMO) --quiet
	$(VENV)/bin/aetk report --results $(DEMO) --out $(DEMO)/figures

# Descriptor bundles of the paper's grid for training without LAMMPS (a GPU machine):
# then `scripts/gpu_sweep.sh sweeps/paper.toml bundles/paper` there (docs/paper_regime.md).
bundles: setup
	$(VENV)/bin/aetk bundle --config sweeps/paper.toml --out bundles/paper --precision fixed16

lint: setup
	$(VENV)/bin/ruff check toolkit tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
