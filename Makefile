# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
# `make run` installs what serving needs (the runtime dependencies, a JDK for the
# embedded DynamoDB Local); `make test` adds the dev extras and the browser.
PYTHON  ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
CKSUM   := $(shell cksum < pyproject.toml | cut -d' ' -f1)
RUNTIME := $(VENV)/.runtime-$(CKSUM)
STAMP   := $(VENV)/.installed-$(CKSUM)
# Tests run in three processes (pytest-xdist), each with its own DynamoDB Local: most of
# a test waits on a server or a browser, so on two cores three beat two (pytest 676 s
# with two, 543 s with three, 500 s with four, quiet, 2026-12-08); four doubled the
# slowest tests' own time, a margin their deadlines need on a slower machine.
TEST_WORKERS ?= 3

# The Gatsby 5 site tests/browser/test_gatsby.py drives: node_modules is installed
# once per package-lock.json (npm ci), the site rebuilt only when its sources change.
GATSBY_SITE    := tests/gatsby-site
GATSBY_MODULES := $(GATSBY_SITE)/node_modules/.installed-$(shell cksum < $(GATSBY_SITE)/package-lock.json | cut -d' ' -f1)
GATSBY_SOURCES := $(GATSBY_SITE)/package.json $(GATSBY_SITE)/gatsby-config.js $(GATSBY_SITE)/gatsby-node.js \
	$(shell find $(GATSBY_SITE)/src -type f) $(wildcard client/gatsby-plugin-livecount/*)

# The Hugo site and the single-page app (Vite, React Router) tests/browser/test_sites.py
# drives, built once per change of their sources; the plain HTML site needs no build.
HUGO_SITE    := tests/hugo-site
HUGO_SOURCES := $(HUGO_SITE)/hugo.toml $(shell find $(HUGO_SITE)/content $(HUGO_SITE)/layouts -type f)
SPA_SITE     := tests/spa-site
SPA_MODULES  := $(SPA_SITE)/node_modules/.installed-$(shell cksum < $(SPA_SITE)/package-lock.json | cut -d' ' -f1)
SPA_SOURCES  := $(SPA_SITE)/index.html $(SPA_SITE)/vite.config.js $(shell find $(SPA_SITE)/src -type f)

.PHONY: run test soak lint unit js system-deps test-deps runtime install clean bench gatsby-site hugo-site spa-site

run: runtime system-deps  ## livecount serve on the embedded DynamoDB Local
	$(BIN)/livecount serve $(ARGS)

test: install test-deps lint gatsby-site hugo-site spa-site  ## everything CI runs
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --durations=25 $(PYTEST_ARGS)
	node --test tests/js/

soak: install system-deps  ## long variants: a million hostile frames, a 30 s store outage, a node joining at lease time 180, a node stopped past its lease, all of each property's examples
	LIVECOUNT_FUZZ_FRAMES=1000000 LIVECOUNT_OUTAGE_SECONDS=30 LIVECOUNT_SOAK=1 \
		$(BIN)/python -m pytest -q tests/e2e/test_fuzz.py tests/e2e/test_faults.py \
		tests/e2e/test_boundaries.py tests/e2e/test_http_edges.py tests/e2e/test_reports.py \
		tests/unit/test_fuzz_protocol.py tests/unit/test_flushes.py tests/unit/test_pages.py \
		tests/unit/test_readers.py

lint: install  ## ruff, mypy (server/ seen as `livecount`) and the import contract
	$(BIN)/ruff check server client tests bench
	$(BIN)/ruff format --check server client tests bench
	mkdir -p build/mypy && ln -sfn ../../server build/mypy/livecount \
		&& ln -sfn ../../client build/mypy/livecount_client
	$(BIN)/mypy
	$(BIN)/lint-imports

unit: install  ## the pure core only: seconds, no Java, no network
	$(BIN)/python -m pytest -q tests/unit

bench: install system-deps  ## issue 5's benchmarks into docs/BENCHMARKS.md (~10 min; not part of test)
	$(BIN)/python -m pip install -q -e '.[dev,bench]'  # py-spy, for the profile
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m bench.run $(BENCH_ARGS)

runtime: $(RUNTIME)  ## the venv with what `livecount serve` needs, nothing more

install: $(STAMP)  ## the venv with the dev extras too (tests, lint, types)

$(BIN)/python:
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "livecount needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	rm -f $(VENV)/.runtime-* && touch $@

$(STAMP): $(RUNTIME)
	$(BIN)/python -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $@

gatsby-site: $(GATSBY_SITE)/public/index.html  ## the test Gatsby site, built (cached)

# sharp's install script downloads libvips from a host this machine cannot reach,
# and the site has no images: skip every install script, then run those Gatsby needs.
$(GATSBY_MODULES): $(GATSBY_SITE)/package-lock.json | system-deps
	cd $(GATSBY_SITE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	cd $(GATSBY_SITE) && npm rebuild --loglevel=error lmdb msgpackr-extract @parcel/watcher gatsby gatsby-cli
	touch $@

$(GATSBY_SITE)/public/index.html: $(GATSBY_MODULES) $(GATSBY_SOURCES)
	cd $(GATSBY_SITE) && GATSBY_TELEMETRY_DISABLED=1 CI=true node_modules/.bin/gatsby build
	touch $@

hugo-site: $(HUGO_SITE)/public/index.html  ## the test Hugo site, built (cached)

$(HUGO_SITE)/public/index.html: $(HUGO_SOURCES) | test-deps
	cd $(HUGO_SITE) && hugo --quiet --cleanDestinationDir
	touch $@

spa-site: $(SPA_SITE)/dist/index.html  ## the test single-page app, built (cached)

$(SPA_MODULES): $(SPA_SITE)/package-lock.json | test-deps
	cd $(SPA_SITE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

$(SPA_SITE)/dist/index.html: $(SPA_MODULES) $(SPA_SOURCES)
	cd $(SPA_SITE) && node_modules/.bin/vite build --logLevel error
	touch $@

system-deps:  ## a JDK and npm for DynamoDB Local; installed with apt-get when root
	@bash scripts/system-deps.sh

test-deps:  ## the same, and Chromium for the browser tests
	@bash scripts/system-deps.sh test

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
	rm -rf $(GATSBY_SITE)/node_modules $(GATSBY_SITE)/.cache $(GATSBY_SITE)/public
	rm -rf $(HUGO_SITE)/public $(HUGO_SITE)/resources $(SPA_SITE)/node_modules $(SPA_SITE)/dist
