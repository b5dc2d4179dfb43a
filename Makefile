# The two commands a newcomer needs: `make run` and `make test`. Everything else is a step of them.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
REQUIREMENTS := requirements/base.txt requirements/dev.txt requirements/production.txt requirements/device.txt
STAMP := $(VENV)/.installed

.PHONY: run test lint format install static check-deploy audit clean

$(STAMP): $(REQUIREMENTS) bin/system-packages.sh
	bin/system-packages.sh mosquitto mosquitto-clients npm redis-server
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements/dev.txt
	@touch $(STAMP)

install: $(STAMP)

## make static: the chart library (uPlot, pinned in package-lock.json) from npm into static/vendor/,
## served as our own static files: no CDN at run time.
UPLOT := static/vendor/uplot/uPlot.iife.min.js
$(UPLOT): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	mkdir -p static/vendor/uplot
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE static/vendor/uplot/

static: $(UPLOT)

## make run: the whole product locally, on http://127.0.0.1:8000
run: install static
	$(BIN)/python bin/devstack.py

## make test: ruff, then the whole test suite (the browser tests drive Debian's Chromium)
test: install static lint
	bin/system-packages.sh chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## The production settings pass Django's deployment checks.
check-deploy: install
	DJANGO_SETTINGS_MODULE=astroplant_site.settings.production \
	DJANGO_SECRET_KEY=$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(50))') \
	DJANGO_ALLOWED_HOSTS=astroplant.example.org \
	$(BIN)/python manage.py check --deploy --fail-level WARNING

## make audit: every installed pin (make install installs them all) checked for known
## vulnerabilities by pip-audit, against the advisory service. Fails on a vulnerable pin, and
## on one it could not check (--strict), so it never passes without having looked.
audit: install
	$(BIN)/pip-audit --strict --progress-spinner off

clean:
	rm -rf $(VENV) var staticfiles node_modules static/vendor
