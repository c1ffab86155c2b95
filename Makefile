# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install run test lint format bench clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

# A random secret per checkout, made on first use and never committed (.gitignore): the demo users'
# passwords are public, so a shared development key would let anyone forge their tokens.
DEV_SECRET := .dev-secret-key
DEV_ENV = DJANGO_DEBUG=$${DJANGO_DEBUG:-1} DJANGO_SECRET_KEY=$${DJANGO_SECRET_KEY:-$$(cat $(DEV_SECRET))}

$(DEV_SECRET):
	umask 077 && $(PYTHON) -c "import secrets; print(secrets.token_urlsafe(48))" > $@

# Loopback unless HOST says otherwise (HOST=0.0.0.0 exposes the demo users to the network).
run: install $(DEV_SECRET)
	$(DEV_ENV) $(BIN)/python manage.py migrate --no-input
	$(DEV_ENV) $(BIN)/python manage.py seed_demo
	$(DEV_ENV) $(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python bench/fanout.py

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
