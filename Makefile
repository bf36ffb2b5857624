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
# Debian packages the test bed runs for real: nginx in front of hgweb, htpasswd for its users;
# sshd for ssh:// URLs and ssh-agent/ssh-add that the extension drives; a private D-Bus session
# bus (dbus-daemon, dbus-send) with gnome-keyring's Secret Service, and keyctl for the kernel keyring.
APT_PACKAGES := nginx apache2-utils openssh-server openssh-client dbus-daemon dbus-bin gnome-keyring keyutils
# The keyring stores of other platforms, compile-checked (without the Azure part, whose TLS
# stack has C code that needs that platform's toolchain).
CROSS_TARGETS := x86_64-apple-darwin x86_64-pc-windows-msvc

export CARGO_TERM_COLOR ?= never

# `make bench` only: the Secret Service keyring mercurial_keyring stores into, and its D-Bus session.
BENCH_APT_PACKAGES := gnome-keyring dbus-daemon
BENCH := .work/bench

# `make dist`: where the wheel and the sdist go, and the wheel's platform tag. Built on this
# Debian 12 host (glibc 2.36), the native module links pthread and dl symbols at their glibc 2.34
# versions, so manylinux_2_34 is the oldest tag it really satisfies; maturin's auditwheel check
# fails the build if a newer symbol ever creeps in.
DIST := dist
MANYLINUX := manylinux_2_34

.PHONY: help deps apt venv chg build emulator lint cross-check rust-test py-test test demo fuzz bench clean \
	dist test-dist

help:
	@echo "make demo   - build, start the emulator, store and read a secret through the native module"
	@echo "make test   - lint (fmt, clippy, ruff) and run every Rust and Python test"
	@echo "make dist   - build the release wheel (abi3, $(MANYLINUX)_x86_64) and the sdist into $(DIST)/"
	@echo "make test-dist - install that wheel and Mercurial in a fresh venv without Rust, use it"
	@echo "make fuzz   - run each cargo-fuzz target of the core for FUZZ_SECONDS (not in CI)"
	@echo "make bench  - measure against mercurial_keyring, the Python SDK and az; print one table"

apt: .work/apt.stamp
.work/apt.stamp: Makefile
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

cross-check:
	@for t in $(CROSS_TARGETS); do \
	  if rustup target list --installed 2>/dev/null | grep -qx "$$t" || rustup target add "$$t" >/dev/null 2>&1; then \
	    echo "cargo check --target $$t -p hg-keyvault-core --no-default-features"; \
	    $(CARGO) check -q --target "$$t" -p hg-keyvault-core --no-default-features; \
	  else \
	    echo "cross-check: skipping $$t (rustup cannot install its standard library here)"; \
	  fi; \
	done

rust-test: emulator
	$(CARGO) test -q --workspace

py-test: deps build emulator
	HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) $(PY) -m pytest -q tests

test: deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory cross-check
	@$(MAKE) --no-print-directory rust-test
	@$(MAKE) --no-print-directory py-test

# The release artefacts: one abi3 wheel for every CPython >= 3.9 on Linux x86_64, and the sdist
# (the extension, the core and the bindings; not the emulator) that builds it anywhere with Rust.
dist: venv
	rm -rf $(DIST)
	$(VENV)/bin/maturin build -q --release --locked --compatibility $(MANYLINUX) --out $(DIST)
	$(VENV)/bin/maturin sdist --out $(DIST)
	@ls -l $(DIST)

# Not part of `make test` (it needs the release build); CI runs both.
test-dist: deps emulator
	@ls $(DIST)/hg_keyvault-*.whl >/dev/null 2>&1 || $(MAKE) --no-print-directory dist
	HG_KEYVAULT_WHEEL=$$(ls $(abspath $(DIST))/hg_keyvault-*.whl) HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) \
	  $(PY) -m pytest -q tests/dist_wheel.py

demo: deps build emulator
	HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) $(PY) tests/demo.py

# Fuzzing (not in CI): cargo-fuzz from crates.io, libFuzzer through the libfuzzer-sys crate. It needs
# a nightly toolchain; without one, stable with RUSTC_BOOTSTRAP=1 and no sanitizer.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := ref_parser origin_matcher config_reader
CARGO_FUZZ := .work/tools/bin/cargo-fuzz
FUZZ_NIGHTLY := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo yes)
fuzz:
	test -x $(CARGO_FUZZ) || $(CARGO) install -q --locked --version =0.13.2 --root .work/tools cargo-fuzz
	@mkdir -p .work/reports
	@: > .work/reports/fuzz.txt
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p rust/keyvault-core/fuzz/corpus/$$t; \
	  if [ -n "$(FUZZ_NIGHTLY)" ]; then tc=nightly; san=address; boot=; else tc=stable; san=none; boot=1; fi; \
	  ( cd rust/keyvault-core && RUSTUP_TOOLCHAIN=$$tc RUSTC_BOOTSTRAP=$$boot \
	    $(abspath $(CARGO_FUZZ)) fuzz run --fuzz-dir fuzz -s $$san $$t fuzz/corpus/$$t fuzz/seeds/$$t \
	    -- -max_total_time=$(FUZZ_SECONDS) -max_len=512 -print_final_stats=1 ) 2>&1 \
	    | tee .work/fuzz-$$t.log | grep -E "^Done|stat::number_of_executed_units|crash-|panicked" || true; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' .work/fuzz-$$t.log | tail -1); \
	  found=$$(ls rust/keyvault-core/fuzz/artifacts/$$t 2>/dev/null | wc -l); \
	  echo "$$t ($$tc, sanitizer $$san): $${runs:-?} executions in $(FUZZ_SECONDS) s, $$found findings" \
	    | tee -a .work/reports/fuzz.txt; \
	done
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
	rm -rf target .work $(VENV) $(DIST) hgext/hgext3rd/keyvault/*.so
