# hg-keyvault: `make demo` and `make test` do all the set-up they need on a fresh Debian machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV ?= .venv
PY := $(VENV)/bin/python
CARGO ?= cargo
EMULATOR := target/debug/hg-keyvault-emulator
HG_VERSION := $(shell sed -n 's/^mercurial==//p' tests/requirements.txt)
# chg, Mercurial's command server client, built from the same Mercurial sdist (PyPI ships no binary).
CHG := $(VENV)/bin/chg
# Debian packages the test bed runs for real: nginx in front of hgweb, htpasswd for its users.
APT_PACKAGES := nginx apache2-utils

export CARGO_TERM_COLOR ?= never

# `make bench` only: the Secret Service keyring mercurial_keyring stores into, and its D-Bus session.
BENCH_APT_PACKAGES := gnome-keyring dbus-daemon
BENCH := .work/bench

.PHONY: help deps apt venv chg build emulator lint rust-test py-test test demo bench clean

help:
	@echo "make demo   - build, start the emulator, store and read a secret through the native module"
	@echo "make test   - lint (fmt, clippy, ruff) and run every Rust and Python test"
	@echo "make bench  - measure against mercurial_keyring, the Python SDK and az; print one table"

apt: .work/apt.stamp
.work/apt.stamp:
	@mkdir -p .work
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@touch $@

venv: $(VENV)/.installed
$(VENV)/.installed: tests/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r tests/requirements.txt
	@touch $@

chg: $(CHG)
$(CHG): $(VENV)/.installed
	rm -rf .work/chg && mkdir -p .work/chg
	cd .work/chg && $(abspath $(PY)) -m pip download -q --disable-pip-version-check --no-deps \
	  --no-binary :all: mercurial==$(HG_VERSION) -d .
	tar -xzf .work/chg/mercurial-$(HG_VERSION).tar.gz -C .work/chg mercurial-$(HG_VERSION)/contrib/chg
	$(MAKE) -s -C .work/chg/mercurial-$(HG_VERSION)/contrib/chg
	cp .work/chg/mercurial-$(HG_VERSION)/contrib/chg/chg $@

deps: apt venv chg

# The extension and its native module, installed into the venv the way users get it (editable).
build: venv
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop -q --manifest-path rust/keyvault-py/Cargo.toml

emulator:
	$(CARGO) build -q -p hg-keyvault-emulator

lint: venv
	$(CARGO) fmt --all --check
	$(CARGO) clippy -q --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check hgext tests bench
	$(VENV)/bin/ruff format --check hgext tests bench

rust-test: emulator
	$(CARGO) test -q --workspace

py-test: deps build emulator
	HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) $(PY) -m pytest -q tests

test: deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory rust-test
	@$(MAKE) --no-print-directory py-test

demo: deps build emulator
	HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) $(PY) tests/demo.py

# Not part of `make test` or CI: its own venvs (peers included), release builds, one table.
bench: apt
	@missing=""; for p in $(BENCH_APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	test -x $(BENCH)/venv/bin/python || python3 -m venv $(BENCH)/venv
	$(BENCH)/venv/bin/pip install -q --disable-pip-version-check -r bench/requirements.txt
	test -x $(BENCH)/az/bin/az || { python3 -m venv $(BENCH)/az && \
	  $(BENCH)/az/bin/pip install -q --disable-pip-version-check -r bench/requirements-az.txt; }
	$(CARGO) build -q --release -p hg-keyvault-emulator
	$(CARGO) build -q --release -p hg-keyvault-core --example fetch_one
	rm -rf $(BENCH)/wheels
	$(BENCH)/venv/bin/maturin build -q --release -o $(BENCH)/wheels
	$(BENCH)/venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps $(BENCH)/wheels/*.whl
	HG_KEYVAULT_EMULATOR=$(abspath target/release/hg-keyvault-emulator) bench/run.sh

clean:
	rm -rf target .work $(VENV) hgext/hgext3rd/keyvault/*.so
