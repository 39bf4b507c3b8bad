# lrviz: `make run` starts the app, `make test` runs every test. Both set everything up
# first (virtualenv, requirements, Fashion-MNIST) and are quick the second time.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMPS := .stamps
PORT   ?= 8501
PYTEST_ARGS ?=

.PHONY: run test setup data bench ray-test clean lint

run: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)

# Ray's tests run in `make ray-test` (the optional extra); CI runs both.
test: setup
	$(PY) -m pytest -m "not ray" $(PYTEST_ARGS)

setup: $(STAMPS)/venv data

# Reinstall only when requirements.txt changes.
$(STAMPS)/venv: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@mkdir -p $(STAMPS) && touch $@

# Fashion-MNIST: Debian's package where we are root with apt; else Keras downloads it on
# first use (see README, "Data"). LRVIZ_DATA_DIR skips this.
data:
	@$(PY) -m lrviz.data --ensure

bench: setup
	$(PY) benchmarks/preview.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/sweep.py

ray-test: setup $(STAMPS)/ray
	$(PY) -m pytest -m ray $(PYTEST_ARGS)

$(STAMPS)/ray: requirements-ray.txt
	$(PY) -m pip install --quiet -r requirements-ray.txt
	@mkdir -p $(STAMPS) && touch $@

lint: setup
	$(PY) -m ruff check lrviz pages app.py tests benchmarks

clean:
	rm -rf $(VENV) $(STAMPS) .pytest_cache
