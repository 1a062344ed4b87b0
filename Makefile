# Two targets do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
# The CPU wheel; on a GPU machine run `make TORCH=torch==2.13.0` or preinstall torch in the venv.
TORCH  ?= torch==2.13.0
BIN    := $(VENV)/bin

.PHONY: demo test test-slow lint clean mutate

# the runtime alone for the demo; the test tools (ray, mlflow, tensorboard, mutmut, pytest,
# ruff: minutes to install) only for `make test` and `make mutate`
$(BIN)/sharpen: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev: $(BIN)/sharpen
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(BIN)/sharpen
	$(BIN)/sharpen run quickstart --profile quick --out runs/quickstart-demo

# the fast suite (long-training tests carry @pytest.mark.slow; `make test-slow` runs them and
# .ci/run runs both, so CI still runs every test)
test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(VENV)/.dev
	$(BIN)/python -m pytest -q -m slow

# ruff, and no import circles inside the package (tests/test_imports.py runs the same check)
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/python tools/import_cycles.py

clean:
	rm -rf $(VENV) runs

# Mutation testing of the core modules (not in CI: slow). Score and survivors: docs/mutation.md
mutate: $(VENV)/.dev
	$(BIN)/python tools/mutate.py
