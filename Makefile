# Hercules: set-up, run, test and lint targets.  All targets are idempotent.
#
#   make setup   Debian packages + kernel headers for BCC, .venv with hercc[test,lint] and tox
#   make run     keys, build, routes of the quickstart example; then it runs as a lab: up, check, down
#   make test    run every tox env (py, lint)
#   make lint    ruff check + ruff format --check + mypy --strict + lint-imports (the layers)
#   make clean   remove build/, .tox/ and .venv/

SHELL := /bin/bash
.DEFAULT_GOAL := setup

# python3.11 when on PATH (pyenv, python.org builds), else Debian's python3 (3.11 on bookworm).
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3 2>/dev/null)

VENV      := .venv
VPY       := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.pip-stamp
# bench/ may be absent in a fresh clone (git keeps no empty folders).
LINT_PATHS = $(wildcard compiler tests bench)

export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PIP_NO_INPUT := 1
export BCC_KERNEL_SOURCE ?= /var/cache/hercules/kernel-headers

.PHONY: setup debs run test lint clean

setup: debs $(PIP_STAMP)
	@bash scripts/bcc-venv-link.sh $(VENV)

# Cheap when nothing changed: the script checks its stamp and dpkg-query.
debs:
	@bash scripts/install-debian-packages.sh $(VENV)

$(VPY): | debs
	@test -n "$(PYTHON)" || { echo "no python3.11 or python3 on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# pip reruns only when pyproject.toml changes (or the venv is new).
$(PIP_STAMP): pyproject.toml | $(VPY)
	$(VPY) -m pip install -q --upgrade pip
	$(VPY) -m pip install -q -e '.[test,lint]' 'tox>=4'
	@touch $@

run: setup
	$(VENV)/bin/hercc keys init examples/quickstart.herc --keys build/keys
	$(VENV)/bin/hercc build examples/quickstart.herc -o build/quickstart --keys build/keys
	$(VENV)/bin/hercc summary build/quickstart
	$(VENV)/bin/hercc route examples/quickstart.herc
	@# The whole network on this machine: up, the reachability matrix, down (always).
	$(VENV)/bin/hercc lab down --name quickstart >/dev/null
	$(VENV)/bin/hercc lab up examples/quickstart.herc --name quickstart
	@status=0; $(VENV)/bin/hercc lab check --name quickstart || status=$$?; \
	$(VENV)/bin/hercc lab down --name quickstart; exit $$status

test: setup
	$(VENV)/bin/tox

# Runs every checker, fails if any fails. lint-imports checks the import contracts of
# pyproject.toml ([tool.importlinter]): the layers of hercc, and no import cycles.
lint: setup
	@rc=0; \
	echo "ruff check $(LINT_PATHS)"; $(VENV)/bin/ruff check $(LINT_PATHS) || rc=1; \
	echo "ruff format --check $(LINT_PATHS)"; $(VENV)/bin/ruff format --check $(LINT_PATHS) || rc=1; \
	echo "mypy --strict compiler/hercc"; $(VENV)/bin/mypy --strict compiler/hercc || rc=1; \
	echo "lint-imports"; $(VENV)/bin/lint-imports || rc=1; \
	exit $$rc

clean:
	rm -rf build .tox $(VENV)
