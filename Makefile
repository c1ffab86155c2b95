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

# --- the system's parts one by one (README "Scaling out"); each takes HOST and PORT like `run` ---------
SIM_PORT ?= 9443

.PHONY: serve worker simulator migrate superuser

serve: install  ## HTTP and WebSockets only (set REDIS_URL and run `make worker` once): make serve PORT=8001
	$(BIN)/python manage.py serve --no-worker --host $(HOST) --port $(PORT)

worker: install  ## the market-data worker with the paper engine and bots: exactly one per deployment
	$(BIN)/python manage.py runstream

simulator: install  ## a local exchange speaking Binance's protocol: make simulator SIM_PORT=9443
	$(BIN)/python manage.py simulate_exchange --host $(HOST) --port $(SIM_PORT)

migrate: install
	$(BIN)/python manage.py migrate --no-input

superuser: install  ## an admin account on a fresh database (asks for the password)
	$(BIN)/python manage.py createsuperuser
