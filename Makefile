# The two set-up commands of the README: `make demo` and `make test` (both as root).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv test unit lab demo demo-down fuzz clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# Everything: lint + types + unit + conformance + lab (lab tests need root, bird2 and frr).
test: venv
	$(PY) -m pytest -q

unit: venv
	$(PY) -m pytest -q -m 'not lab'

lab: venv
	$(PY) -m pytest -q -m lab

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
