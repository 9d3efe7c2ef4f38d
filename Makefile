# The README's two commands: `make demo` and `make test`. Both create .venv first.
PYTHON ?= python3
VENV ?= .venv
OUT ?= out/demo
PYTEST_ARGS ?=

$(VENV)/.installed: setup.py requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -qq --progress-bar off --upgrade pip
	$(VENV)/bin/pip install -qq --progress-bar off -e '.[dev]'
	touch $@

# Tests also cover the optional extras: `perceptual` (ColorVideoVDP: cvvdp + PyTorch, ~6 GB)
# and `beam` (Apache Beam shard rendering).
$(VENV)/.installed-test: $(VENV)/.installed setup.py
	$(VENV)/bin/pip install -qq --progress-bar off -e '.[dev,perceptual,beam]'
	touch $@

.PHONY: setup demo test bench
setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/dealthdr demo --out $(OUT)

# Two workers, one test file at a time each, files in tests/conftest.py's order (longest
# first): a worker that finishes a file takes the next one.
test: $(VENV)/.installed-test
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder --durations=15 \
	  tests $(PYTEST_ARGS)

bench: setup
	$(VENV)/bin/dealthdr bench --config dealthdr_2exp:size=small --size 512x512 --ratios 0,0.25,0.5,1
