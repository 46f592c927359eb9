# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

# Tests, the demo and benchmarks never reach a metadata service or a real account.
export ALIBABA_CLOUD_ECS_METADATA_DISABLED := true
# Compiled modules and pytest's rewritten tests are kept in __pycache__ (ignored by git): a machine that sets
# PYTHONDONTWRITEBYTECODE would otherwise compile every module in every test process, about 5 s of CPU each.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test test-e2e test-slow mutants bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# Lint and types first; then two phases: everything else on four workers (the tests spend much of their time waiting
# on sockets and backoff, so four keep two cores busy), then the tests that time the wall clock, alone, so that nothing
# shares their CPU (only the files that name the marker are collected again for it). Chaos: the seeds that reach every
# scenario kind twice.
REALTIME_FILES = $(shell grep -l realtime tests/test_*.py)
test: $(STAMP)
	$(PY) -m ruff check bulk tests benchmarks samples
	$(PY) -m mypy
	$(PY) -m pytest -q -n 4 -m "not realtime and not slow and not e2e"
	$(PY) -m pytest -q -p no:xdist -m "realtime and not slow and not e2e" $(REALTIME_FILES)

# Tests that need system tools: promtool (Debian's prometheus package has it; no smaller package does) and
# chromium, installed through apt when missing (CI runs as root; elsewhere through sudo).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
test-e2e: $(STAMP)
	@missing=""; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(PY) -m pytest -q -m e2e

# 120 chaos seeds and whatever else is too long for every landing.
test-slow: $(STAMP)
	$(PY) -m pytest -q -n 2 -m slow

# Named one-line breakages of the product that the suite must catch (tests/mutants.py).
mutants: $(STAMP)
	$(PY) tests/mutants.py

demo: $(STAMP)
	$(PY) samples/demo.py

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) demo-out .pytest_cache
