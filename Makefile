# candle-pipeline: every command a user needs, on a fresh machine with Python 3.11+.
# The virtual environment lives in .venv/ of the checkout; dependencies are pinned by
# constraints.txt. PostgreSQL's server binaries are installed when missing (Debian's package as
# root, else the pip-installable `pgserver`).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PG_STAMP := $(VENV)/.postgres-binaries
CHROMIUM := /usr/bin/chromium
TEST_WORKERS ?= 2

.PHONY: install demo ui test snapshot lint format bench bench-quick clean

install: $(STAMP) $(PG_STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

# initdb/pg_ctl: on PATH, in Debian's /usr/lib/postgresql/*/bin, or installed here.
$(PG_STAMP): $(STAMP)
	@if command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's postgresql package"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "installing pgserver (PostgreSQL binaries from PyPI)"; \
		$(BIN)/pip install --quiet pgserver; \
	fi
	touch $(PG_STAMP)

demo: install
	$(BIN)/candle-pipeline demo

ui: install
	$(BIN)/candle-pipeline ui

# The browser test drives Debian's Chromium (never a downloaded browser) through Playwright.
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium package"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "the browser test needs $(CHROMIUM): install Debian's chromium package (as root)"; \
		exit 1; \
	fi

test: install $(CHROMIUM)
	$(BIN)/pytest -n $(TEST_WORKERS)

# After an intended change to what `defs` ships: rewrite the reviewed snapshot the tests compare.
snapshot: $(STAMP)
	$(BIN)/python -m candle_pipeline_tests.defs_snapshot --write

# Every figure of docs/benchmarks.md with its baseline, from one run (about 35 minutes on 2 cores);
# bench-quick: the same figures at small sizes, in about two minutes.
bench: install
	$(BIN)/python -m bench

bench-quick: install
	$(BIN)/python -m bench --quick

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	-$(BIN)/candle-pipeline db down
	rm -rf $(VENV) .state
