# The two README commands: `make test` and `make reproduce`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ganinv-installed

.PHONY: install test lint format reproduce bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch from the standard index: its Linux build runs on CPU and keeps torchvision (lpips) working
	$(BIN)/python -m pip install torch torchvision
	$(BIN)/python -m pip install -e ".[dev,notebooks]"
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# pytest (unit tests + papermill SMOKE runs of the notebooks), then nbval re-runs the committed executed notebooks
# (figures they write go to a temporary folder, not figures/).
test: install lint
	$(BIN)/python -m pytest
	GANINV_FIGURES_DIR=$$(mktemp -d) $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:python notebooks/

reproduce: install
	$(BIN)/python -m ganinv.reproduce

bench: install
	$(BIN)/python -m ganinv.bench generator --json figures/bench_generator.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
