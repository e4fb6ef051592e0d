# `make demo`: bring up a local containerized worker fleet and roll playbooks/site.yml over it.
# `make test`: lint, unit tests and every Molecule scenario; `default` on every Airflow in the matrix.
SHELL := /bin/bash
# A failing `molecule` fails its recipe though its output goes through scripts/timelog.py.
.SHELLFLAGS := -o pipefail -c
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0
export ANSIBLE_NOCOLOR := 1
# Where the wall time of every image build, scenario and Molecule step goes; `make test` prints
# them as a table at its end (scripts/times_table.py).
export ACC_TIMES ?= $(CURDIR)/.cache/test-times.tsv

# One representative per Airflow family the role supports (README: Supported versions). The
# matrix runs them two at a time, one per worker of molecule/default, in this order: 3.3.2 beside
# 3.0.6, 2.10.5 beside 2.6.3, 2.2.5 beside 1.10.15 (an odd one out runs on both workers).
AIRFLOW_VERSIONS ?= 3.3.2 3.0.6 2.10.5 2.6.3 2.2.5 1.10.15
export ACC_AIRFLOW_VERSIONS := $(AIRFLOW_VERSIONS)
# The graceful-restart and rollback proofs (about 2 minutes a run) run where a worker has the
# newest or the oldest Airflow; every run has the rest of molecule/default.
RESTART_PROOF_VERSIONS ?= 3.3.2 1.10.15
# The rolling-drain proof, one of those above, also runs alone (about 1.5 minutes a run) where a
# worker has one of these: Airflow 2's newest Celery, besides the newest and the oldest.
DRAIN_PROOF_VERSIONS ?= 2.10.5
# The record's input-change cases (molecule/default/record_cases.yml) need the celery provider:
# they run where the first worker has 3.3.2.
# Control nodes molecule/native runs the role from (docs/testing.md: Control nodes); empty: all
# of `scripts/control-nodes.sh list`, Debian 12's own `ansible` package (ansible-core 2.14 with
# Debian's Python libraries) and PyPI's `ansible` 7.x to 14.x (ansible-core 2.14 to 2.21) but the
# tools' own 12.3.0 (2.19), which every other scenario runs. A few: CONTROL_NODES="debian12 14.5.0"
CONTROL_NODES ?=
export ACC_CONTROL_NODES := $(CONTROL_NODES)

.PHONY: venv setup images demo demo-destroy lint unit collection-checks test test-lint-unit test-lane-images test-lane-matrix test-lane-scenarios test-versions test-scenarios

# The Python tools only: enough for lint and unit, without Docker or root.
venv:
	scripts/venv.sh

# Docker, debootstrap and the venv: what the Molecule scenarios and the demo need.
setup:
	scripts/setup.sh

images: setup
	scripts/build-images.sh

demo: setup
	ACC_AIRFLOW_VERSIONS=3.3.2 scripts/build-images.sh
	molecule destroy
	molecule converge

demo-destroy: setup
	molecule destroy

# ansible-doc must render every module's documentation: a lint of the docs, not a unit test.
lint: venv
	yamllint .
	ansible-lint
	flake8 roles/airflow_celery_config/library roles/airflow_celery_config/module_utils tests benchmarks scripts
	python -m pytest -q tests/test_module_docs.py

unit: venv
	python -m pytest -q tests --ignore=tests/test_module_docs.py

# The checks Galaxy's importer and ansible-test sanity make, on the tarball Ansible users install
# (docs/testing.md: Collection checks). Needs no Docker; the first run makes venvs for both.
collection-checks: venv
	scripts/collection_checks.sh

# Two lanes run side by side: the Airflow matrix, then the scenarios of LATE_SCENARIOS; and
# every other scenario. The matrix is the shorter part, so the late ones end the lanes together.
# Each scenario has container names and a network of its own, so the lanes never touch each
# other's hosts. Each output line starts with its scenario's name. Beside them, a third lane
# builds every image the matrix needs, in the matrix's order, one version at a time; a lane that
# needs an image still being built waits for it (scripts/build-images.sh holds a lock), so on a
# fresh machine the builds, which wait on downloads much of the time, overlap the first scenarios.
SCENARIOS ?= bad_input multi_install fallback postgres native restarts hosts rabbitmq
LATE_SCENARIOS ?= multi_install postgres rabbitmq

test: setup
	@mkdir -p $(dir $(ACC_TIMES)) && : > $(ACC_TIMES)
	@$(MAKE) --no-print-directory -j3 test-lane-images test-lane-matrix test-lane-scenarios; rc=$$?; \
	  scripts/times_table.py $(ACC_TIMES); exit $$rc

# Lint and the unit tests run while the image lane starts its builds; no Molecule run starts
# before they pass.
test-lane-matrix test-lane-scenarios: test-lint-unit

test-lint-unit:
	@started=$$(date +%s); $(MAKE) --no-print-directory lint unit 2>&1 | sed -u 's/^/[lint, unit] /' || exit 1; \
	  printf 'lint, unit\tall\t%s\n' $$(( $$(date +%s) - started )) >> $(ACC_TIMES)

# After the images, the control nodes molecule/native runs the role from (its verify step waits
# for them, or makes them itself if it gets there first), then the collection checks: they
# need no image, and this lane has the least to do.
test-lane-images:
	@for version in $(AIRFLOW_VERSIONS); do \
	  ACC_AIRFLOW_VERSIONS=$$version scripts/build-images.sh 2>&1 | sed -u 's/^/[images] /' || exit 1; \
	done
	@started=$$(date +%s); scripts/control-nodes.sh prepare $${ACC_CONTROL_NODES:-$$(scripts/control-nodes.sh list)} 2>&1 \
	  | sed -u 's/^/[control nodes] /' || exit 1; \
	  printf 'control nodes\tall\t%s\n' $$(( $$(date +%s) - started )) >> $(ACC_TIMES)
	@started=$$(date +%s); scripts/collection_checks.sh 2>&1 | sed -u 's/^/[collection] /' || exit 1; \
	  printf 'collection checks\tall\t%s\n' $$(( $$(date +%s) - started )) >> $(ACC_TIMES)

test-lane-matrix:
	@$(MAKE) --no-print-directory test-versions
	@$(MAKE) --no-print-directory test-scenarios SCENARIOS="$(filter $(LATE_SCENARIOS),$(SCENARIOS))"

test-lane-scenarios:
	@$(MAKE) --no-print-directory test-scenarios SCENARIOS="$(filter-out $(LATE_SCENARIOS),$(SCENARIOS))"

test-versions:
	@set -- $(AIRFLOW_VERSIONS); \
	while [ $$# -gt 0 ]; do \
	  first=$$1; second=$${2:-$$1}; shift; [ $$# -eq 0 ] || shift; \
	  ACC_AIRFLOW_VERSIONS="$$first $$second" scripts/build-images.sh || exit 1; \
	  echo "== $$(date +%T) molecule default scenario, Airflow $$first and $$second"; \
	  case " $(RESTART_PROOF_VERSIONS) " in *" $$first "*|*" $$second "*) proofs=true ;; *) proofs=false ;; esac; \
	  case " $(DRAIN_PROOF_VERSIONS) " in *" $$first "*|*" $$second "*) drain=true ;; *) drain=$$proofs ;; esac; \
	  case $$first in 3.3.2) records=true ;; *) records=false ;; esac; \
	  ACC_AIRFLOW_VERSION=$$first ACC_AIRFLOW_VERSION_2=$$second ACC_RESTART_PROOFS=$$proofs ACC_DRAIN_PROOF=$$drain ACC_RECORD_CASES=$$records \
	    molecule test -s default 2>&1 | scripts/timelog.py "default $$first+$$second" || exit 1; \
	done; \
	echo "== $$(date +%T) the Airflow matrix passed"

# Every scenario but default runs on Airflow 3.3.2.
test-scenarios:
	@ACC_AIRFLOW_VERSIONS=3.3.2 scripts/build-images.sh
	@for scenario in $(SCENARIOS); do \
	  echo "== $$(date +%T) molecule $$scenario scenario"; \
	  molecule test -s $$scenario 2>&1 | scripts/timelog.py $$scenario || exit 1; \
	done; \
	echo "== $$(date +%T) scenarios passed: $(SCENARIOS)"
