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

# The demo: 3 bgpd nodes in a full mesh with a BIRD ToR (netns-lab/topologies/mesh3-bird-tor.yaml).
demo: venv
	@command -v bird >/dev/null || (apt-get install -y -q bird2 frr >/dev/null)
	$(PY) netns-lab/lab up netns-lab/topologies/mesh3-bird-tor.yaml --wait 90
	$(PY) netns-lab/lab status --daemons
	@echo
	@echo "Every session above is Established. Look around with: netns-lab/lab exec NODE -- CMD"
	@echo "Tear it down with: make demo-down"

demo-down: venv
	$(PY) netns-lab/lab down --name mesh3

# The long fuzz run (about half an hour): the hypothesis properties of the loader, the selector parser,
# the control protocol and the bad-input checks, 10,000 examples each (the suite runs them short).
fuzz: venv
	BGPD_FUZZ=long $(PY) -m pytest -q --timeout 3600 tests/unit/test_fuzz_inputs.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
