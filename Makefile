# The commands the README names. Everything runs from the checkout, in a virtualenv at .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
# pytest's own cache and Ansible's temp files stay inside the checkout.
export ANSIBLE_LOCAL_TEMP := $(CURDIR)/build/ansible-tmp

.PHONY: help venv collections lab-up lab-down lab-env demo test test-unit test-lab test-integration gates contract sanity lint changelog-lint docs bench build constraints clean

help:
	@echo "make demo   - virtualenv, pinned dependencies, the lab, and playbooks/site.yml on it (MAAS to running VMs)"
	@echo "make test   - the quality gates, then unit tests, lab tests and integration tests against the lab"
	@echo "make gates  - ansible-test sanity, ansible-lint (production profile), changelog lint, the MAAS/Palette contract"
	@echo "make docs   - docs/reference from the modules', plugins' and roles' own documentation"
	@echo "make bench  - benchmarks against kubevirt.core, kubernetes.core and kubectl (docs/benchmarks.md)"
	@echo "make build  - build the collection tarball"
	@echo "make lab-up / lab-down / lab-env - the local lab on its own"

$(VENV)/.installed: requirements.txt requirements-dev.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	touch $@

venv: $(VENV)/.installed

# Ansible finds this checkout as palette.vmo through build/collections (see ansible.cfg).
collections:
	@mkdir -p build/collections/ansible_collections/palette build/ansible-tmp
	@ln -sfn ../../../.. build/collections/ansible_collections/palette/vmo

lab-up: venv collections
	$(PY) -m tests.lab up

# The checkout's lab and the labs of the test workers (.lab-gw1, ...).
lab-down:
	@if [ -x $(PY) ]; then $(PY) -m tests.lab down; \
	  for state in $(CURDIR)/.lab-gw*; do [ -d "$$state" ] && PALETTE_VMO_LAB_STATE="$$state" $(PY) -m tests.lab down; done; true; fi

lab-env:
	@$(PY) -m tests.lab env

# The whole site on the lab, with the connections `python -m tests.lab env` prints (MAAS, Palette, kubeconfig).
demo: venv collections lab-up
	@eval "$$($(PY) -m tests.lab env)" && $(VENV)/bin/ansible-playbook -i inventories/lab/hosts.yml playbooks/site.yml
	@echo "The lab keeps running. Its kubeconfig: $(CURDIR)/.lab/kubeconfig"
	@echo "Use it from a shell with: eval \"\$$($(PY) -m tests.lab env)\"; stop it with: make lab-down"

test-unit: venv collections
	$(PY) -m pytest tests/unit

test-lab: venv collections lab-up
	$(PY) -m pytest tests/lab/tests

test-integration: venv collections lab-up
	$(PY) -m pytest tests/integration

# The gates in the background while pytest runs the suites on PYTEST_WORKERS workers, each with a lab of its own.
PYTEST_WORKERS ?= 2
export PYTEST_WORKERS
test: venv collections lab-up
	$(PY) -m tests.suite

# Each gate prints its wall time. Sanity runs on a copy under build/sanity (see tests/gates/sanity.py).
TIMED = started=$$(date +%s); trap 'echo "$@: $$(( $$(date +%s) - started ))s"' EXIT;

gates: contract sanity lint changelog-lint

sanity: venv
	@$(TIMED) $(PY) -m tests.gates.sanity

lint: venv collections
	@$(TIMED) PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/ansible-lint

# Every MAAS and Palette call of the collection is served by its simulator, every simulator route names the
# published operation it mirrors (and, with the published specs beside the checkout, is in them).
contract: venv
	@$(TIMED) $(PY) -m tests.gates.contract

changelog-lint: venv
	@$(TIMED) $(VENV)/bin/antsibull-changelog lint

docs: venv collections
	$(PY) -m tests.gates.docs

# BENCH_ARGS="--sizes 10,100 --repeats 1" for a quick run.
bench: venv collections lab-up
	$(PY) -m tests.bench $(BENCH_ARGS)

build: venv
	$(VENV)/bin/ansible-galaxy collection build --force --output-path build/

constraints: venv
	(echo "# Every transitive Python dependency, pinned: pip install -r requirements-dev.txt -c constraints.txt"; \
	 echo "# Regenerate with: make constraints"; \
	 $(VENV)/bin/pip freeze --all | grep -v -E "^(pip|setuptools|wheel)==") > constraints.txt

clean: lab-down
	rm -rf build .pytest_cache
