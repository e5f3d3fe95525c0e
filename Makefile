# Two commands set everything up on a fresh machine: `make demo` and `make test`.
# Both create (or reuse) a virtual environment in .venv inside the checkout.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): setup.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Pretrain on the synthetic cohort, then probe the frozen encoder and print the table.
demo: $(STAMP)
	$(PY) -m ahms_fm.main --config configs/ppg.py:demo --workdir runs/demo
	$(VENV)/bin/ahms-fm probe --checkpoint runs/demo --headline "age,age>50"

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) runs
