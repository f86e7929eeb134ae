# The two README commands: `make test` and `make reproduce`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.ganinv-installed
# Debian's Chromium, driven by Playwright in tests/test_browser.py (Playwright never downloads a browser here)
CHROMIUM := /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT      := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get

.PHONY: install chromium versions test test-fast lint format reproduce bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch from the standard index: its Linux build runs on CPU and keeps torchvision (lpips) working
	$(BIN)/python -m pip install torch torchvision
	$(BIN)/python -m pip install -e ".[dev,notebooks,faces]"
	@touch $(STAMP)

install: $(STAMP)

# apt-get installs chromium only when it is missing (sudo unless root)
chromium:
	@test -x $(CHROMIUM) || { \
	  echo "$(CHROMIUM) missing: installing Debian's chromium with apt-get (for tests/test_browser.py)"; \
	  $(APT) update -qq || echo "apt-get update failed; trying the install with the current package lists"; \
	  $(APT) install -y -qq chromium >/dev/null && test -x $(CHROMIUM); }

# what the tests run with: a crash seen on one machine and not another usually differs here
versions: install
	@$(BIN)/python -c "import platform, numpy, torch, torchvision; print('ganinv tests with python', \
	  platform.python_version(), '| torch', torch.__version__, '| torchvision', torchvision.__version__, \
	  '| numpy', numpy.__version__, '| CPU kernels', torch.backends.cpu.get_cpu_capability())"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# pytest (unit tests + papermill SMOKE runs of the notebooks), then nbval re-runs the committed executed notebooks
# (figures they write go to a temporary folder, not figures/). `versions` prints what they run with;
# `chromium` runs first: tests/test_browser.py drives JupyterLab in it.
test: install versions lint chromium
	$(BIN)/python -m pytest
	GANINV_FIGURES_DIR=$$(mktemp -d) $(BIN)/python -m pytest --nbval-lax --nbval-current-env -p no:python notebooks/

# the quick loop while editing: lint and the tests not marked slow, no notebooks, no browser
test-fast: install versions lint
	$(BIN)/python -m pytest -m "not slow" --ignore=tests/test_notebooks.py --ignore=tests/test_browser.py

reproduce: install
	$(BIN)/python -m ganinv.reproduce

bench: install
	$(BIN)/python -m ganinv.bench generator --json figures/bench_generator.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
