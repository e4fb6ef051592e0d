# `make demo`: bring up a local containerized worker fleet and roll playbooks/site.yml over it.
# `make test`: lint and every Molecule scenario.
SHELL := /bin/bash
VENV := .venv/bin
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0
export ANSIBLE_NOCOLOR := 1

.PHONY: setup images demo demo-destroy lint test

setup:
	scripts/setup.sh

images: setup
	scripts/build-images.sh

demo: images
	molecule destroy
	molecule converge

demo-destroy: setup
	molecule destroy

lint: setup
	yamllint .
	ansible-lint

test: lint images
	molecule test
