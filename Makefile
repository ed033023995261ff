# convtune: `make quickstart` sets up .venv and runs a real study; `make test` sets up and tests.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
TORCH := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: setup system-deps quickstart test test-slow lint ui clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q $(TORCH)
	$(PIP) install -q -e '.[dev]'
	touch $@

# Debian packages the tests use: Fashion-MNIST's files and a browser for the UI test.
system-deps:
	@missing=""; for p in dataset-fashion-mnist chromium; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "note: install$$missing with apt-get for the full test run; tests that need them are skipped"; fi; \
	fi

quickstart: setup
	$(VENV)/bin/convtune check experiments/quickstart.yaml
	$(VENV)/bin/convtune tune experiments/quickstart.yaml

lint: setup
	$(VENV)/bin/ruff check lightning_modules search tests benchmarks

test: setup system-deps lint
	$(VENV)/bin/pytest -q

test-slow: setup system-deps
	$(VENV)/bin/pytest -q -m slow

ui: setup
	$(VENV)/bin/convtune ui

clean:
	rm -rf .convtune mlruns
