# Two commands do everything on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench lint fmt clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/ocean-trio sail integrations/fake

test: $(STAMP)
	# Real servers for the tests: redis-server (and openssl, for its TLS certificates); Debian's
	# chromium and its driver for the live page's browser test.
	command -v redis-server >/dev/null && command -v openssl >/dev/null && command -v chromium >/dev/null && command -v chromedriver >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server openssl chromium chromium-driver)
	$(BIN)/ruff check ocean_trio tests integrations benchmarks
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server)
	$(BIN)/python -m benchmarks.live_events --journal sqlite
	$(BIN)/python -m benchmarks.live_events --journal memory
	$(BIN)/python -m benchmarks.live_events --topology split --ingress-processes 2
	$(BIN)/python -m benchmarks.live_events --journal redis --instances 2
	$(BIN)/python -m benchmarks.live_events --soak 200000
	$(BIN)/python -m benchmarks.live_events --observed
	$(BIN)/python -m benchmarks.live_events --sink port --workers 1
	$(BIN)/python -m benchmarks.big_bodies
	$(BIN)/python -m benchmarks.resync
	$(BIN)/python -m benchmarks.charts

lint: $(STAMP)
	$(BIN)/ruff check ocean_trio tests integrations benchmarks
	$(BIN)/ruff format --check ocean_trio tests integrations benchmarks
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix ocean_trio tests integrations benchmarks
	$(BIN)/ruff format ocean_trio tests integrations benchmarks

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
