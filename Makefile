# hg-keyvault: `make demo` and `make test` do all the set-up they need on a fresh Debian machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

MAIN_VENV := .venv
VENV ?= $(MAIN_VENV)
PY := $(VENV)/bin/python
CARGO ?= cargo
EMULATOR := target/debug/hg-keyvault-emulator
# The Mercurial `make test` runs (the newest line); `make test-compat` reruns the end-to-end suite
# with the same rules in its own venv against COMPAT_HG_VERSION, the oldest line we support:
# Debian 12 (stable) ships 6.3.2, and 6.3.3 is that line's last release on PyPI.
PINNED_HG_VERSION := $(shell sed -n 's/^mercurial==//p' tests/requirements.txt)
HG_VERSION ?= $(PINNED_HG_VERSION)
COMPAT_HG_VERSION := 6.3.3
COMPAT_VENV := .venv-compat
# hg-git (tests/test_hggit.py) in its own venv: its newest release supports Mercurial 6.6-6.9 only
# (tests/requirements-hggit.txt says why these pins). The extension comes from the same source tree
# and native module as `make build`'s, through the same .pth line an editable install writes.
HGGIT_VENV := .venv-hggit
HGGIT_STAMP := $(HGGIT_VENV)/.installed
# chg, Mercurial's command server client, built from the same Mercurial sdist (PyPI ships no binary).
CHG := $(VENV)/bin/chg
# Debian packages the test bed runs for real: nginx in front of hgweb, htpasswd for its users;
# sshd for ssh:// URLs and ssh-agent/ssh-add that the extension drives; a private D-Bus session
# bus (dbus-daemon, dbus-send) with gnome-keyring's Secret Service, and keyctl for the kernel keyring;
# git's http-backend behind nginx through fcgiwrap, the git server of hg-git's tests.
# apache2-bin, not apache2: the binary and modules for the token proxy bed, without a system service.
APT_PACKAGES := nginx apache2-utils openssh-server openssh-client dbus-daemon dbus-bin gnome-keyring keyutils \
	git fcgiwrap apache2-bin libapache2-mod-auth-openidc
# The keyring stores of other platforms, compile-checked (without the Azure part, whose TLS
# stack has C code that needs that platform's toolchain).
CROSS_TARGETS := x86_64-apple-darwin x86_64-pc-windows-msvc

export CARGO_TERM_COLOR ?= never

# `make bench` only: the Secret Service keyring mercurial_keyring stores into, and its D-Bus session;
# valgrind counts the idle rows in instructions (callgrind: exact, unlike wall time on a shared machine).
BENCH_APT_PACKAGES := gnome-keyring dbus-daemon valgrind
BENCH := .work/bench

# `make dist`: where the wheel and the sdist go, and the wheel's platform tag. Linked on this
# Debian 12 host (glibc 2.36) the module would need glibc 2.34 (pthread symbols moved into libc);
# zig (PyPI's ziglang, driven by maturin --zig) links against glibc 2.17 instead, so one wheel fits
# RHEL 7/8 and every newer Linux. maturin's auditwheel check fails the build if a newer symbol creeps in.
DIST := dist
MANYLINUX := manylinux2014
ZIGLANG := ziglang==0.13.0

.PHONY: help deps apt venv chg build compat-build emulator lint check-shared-deps cross-check rust-test py-test test test-compat demo \
	hggit-venv hggit-test hggit-run \
	sandbox sandbox-stop fuzz bench clean dist test-dist

help:
	@echo "make demo   - build, start the emulator and an hg server, clone and push through the vault"
	@echo "make test   - lint (fmt, clippy, ruff, mypy) and run every Rust and Python test"
	@echo "make test-compat - the end-to-end tests against Mercurial $(COMPAT_HG_VERSION) (own venv and chg)"
	@echo "make hggit-test - hg-git against a real git server through the vault (own venv; in make test)"
	@echo "make sandbox - start a local vault and hg server to follow docs/quickstart.md (make sandbox-stop)"
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

# tests/requirements.txt with its Mercurial pin replaced by HG_VERSION (the same for `make test`).
# The stamp names the version, so a changed HG_VERSION reinstalls (and rebuilds chg).
VENV_STAMP := $(VENV)/.installed-hg$(HG_VERSION)
venv: $(VENV_STAMP)
$(VENV_STAMP): tests/requirements.txt
	test -x $(PY) || python3 -m venv $(VENV)
	grep -v '^mercurial==' tests/requirements.txt > $(VENV)/requirements.txt
	echo "mercurial==$(HG_VERSION)" >> $(VENV)/requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check -r $(VENV)/requirements.txt
	@touch $@

chg: $(CHG)
$(CHG): $(VENV_STAMP)
	rm -rf .work/chg-$(HG_VERSION) && mkdir -p .work/chg-$(HG_VERSION)
	cd .work/chg-$(HG_VERSION) && $(abspath $(PY)) -m pip download -q --disable-pip-version-check \
	  --no-deps --no-binary :all: mercurial==$(HG_VERSION) -d .
	tar -xzf .work/chg-$(HG_VERSION)/mercurial-$(HG_VERSION).tar.gz -C .work/chg-$(HG_VERSION) \
	  mercurial-$(HG_VERSION)/contrib/chg
	$(MAKE) -s -C .work/chg-$(HG_VERSION)/mercurial-$(HG_VERSION)/contrib/chg
	cp .work/chg-$(HG_VERSION)/mercurial-$(HG_VERSION)/contrib/chg/chg $@

deps: apt venv chg

# The debug builds share one compiled dependency tree (clippy's checks aside) when cargo sees the same
# features and the same build-script inputs in each of them:
# - features: the "workspace-hack" feature of the bindings (rust/workspace-hack/Cargo.toml says why);
# - pyo3's build scripts track these variables, which maturin develop sets for its cargo call (maturin
#   1.16, its values for this venv's interpreter); clippy and cargo test, which build pyo3 too, get the
#   same, otherwise each side's next build reruns them and rebuilds pyo3 and the bindings.
PYO3_ENV = PYO3_PYTHON=$(abspath $(MAIN_VENV))/bin/python PYTHON_SYS_EXECUTABLE=$(abspath $(MAIN_VENV))/bin/python \
	PYO3_BUILD_EXTENSION_MODULE=1 PYO3_ENVIRONMENT_SIGNATURE=$$($(MAIN_VENV)/bin/python -c \
	'import struct, sys; v = sys.version_info; print("%s-%d.%d-%dbit" % (sys.implementation.name, v[0], v[1], struct.calcsize("P") * 8))')

# The extension and its native module, installed into the venv the way users get it (editable).
build: venv
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop -q --manifest-path rust/keyvault-py/Cargo.toml \
	  --features workspace-hack

# What py-test installs the extension with: `build`, or for test-compat `compat-build`.
PY_BUILD ?= build
# The compat venv gets the editable install `make build` made in $(MAIN_VENV), copied: its .pth
# line to hgext/ and its distribution metadata (which `hg version` reads instead of loading the
# native module). The module is abi3, the same file for any venv. A maturin develop of its own
# would rebuild pyo3 and the bindings for that venv's interpreter path (about 30 s on 2 cores),
# and the next `make build` would rebuild them back.
compat-build: venv
	@$(MAKE) --no-print-directory VENV=$(MAIN_VENV) HG_VERSION=$(PINNED_HG_VERSION) build
	from=$$($(MAIN_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	to=$$($(PY) -c 'import sysconfig; print(sysconfig.get_path("purelib"))'); \
	rm -rf "$$to"/hg_keyvault-*.dist-info "$$to"/hg_keyvault.pth; \
	cp -r "$$from"/hg_keyvault-*.dist-info "$$from"/hg_keyvault.pth "$$to"/

emulator:
	$(CARGO) build -q -p hg-keyvault-emulator

# mypy: the types of hgext/ against the native module's stub ([tool.mypy] in pyproject.toml; the
# stub itself is checked against the built module by tests/test_native_stub.py).
lint: venv
	$(CARGO) fmt --all --check
	$(PYO3_ENV) $(CARGO) clippy -q --workspace --all-targets -- -D warnings
	$(VENV)/bin/ruff check hgext tests bench
	$(VENV)/bin/ruff format --check hgext tests bench
	$(VENV)/bin/mypy

# Whether the emulator and `make build` still reuse the dependency builds of cargo test --workspace
# (after a dependency change; it resolves, compiles nothing): rust/workspace-hack/check.py.
check-shared-deps:
	python3 rust/workspace-hack/check.py

cross-check:
	@for t in $(CROSS_TARGETS); do \
	  if rustup target list --installed 2>/dev/null | grep -qx "$$t" || rustup target add "$$t" >/dev/null 2>&1; then \
	    echo "cargo check --target $$t -p hg-keyvault-core --no-default-features"; \
	    $(CARGO) check -q --target "$$t" -p hg-keyvault-core --no-default-features; \
	  else \
	    echo "cross-check: skipping $$t (rustup cannot install its standard library here)"; \
	  fi; \
	done

# venv: the interpreter pyo3's build scripts are pointed at (PYO3_ENV).
rust-test: venv emulator
	$(PYO3_ENV) $(CARGO) test -q --workspace

# pytest-xdist: test modules in parallel, each module whole on one worker (--dist loadfile: a
# module's servers are module-scoped fixtures). Nothing global is shared between modules: free
# ports, private directories, a private D-Bus per keyring module, and kernel-keyring keys that
# each module tells apart by their description (this bed's ports) or by its own group id.
# PYTEST_WORKERS=0 runs in one process (e.g. with -s to watch one module's output).
PYTEST_WORKERS ?= auto
PYTEST_XDIST := $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile)
py-test: deps $(PY_BUILD) emulator
	HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) $(PY) -m pytest -q $(PYTEST_XDIST) tests

test: deps
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory cross-check
	@$(MAKE) --no-print-directory rust-test
	@$(MAKE) --no-print-directory py-test
	@$(MAKE) --no-print-directory hggit-run

hggit-venv: $(HGGIT_STAMP)
$(HGGIT_STAMP): tests/requirements-hggit.txt
	test -x $(HGGIT_VENV)/bin/python || python3 -m venv $(HGGIT_VENV)
	$(HGGIT_VENV)/bin/pip install -q --disable-pip-version-check -r tests/requirements-hggit.txt
	@touch $@

hggit-test: apt build emulator
	@$(MAKE) --no-print-directory hggit-run

# What hggit-test runs once the extension and the emulator are built (py-test has built them when
# `make test` gets here: a second maturin develop would cost a minute on a busy machine).
# HG_KEYVAULT_HGGIT=required: in this venv a skip would hide a broken set-up, so it fails instead.
hggit-run: hggit-venv
	echo "$(abspath hgext)" > "$$($(HGGIT_VENV)/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/hg_keyvault.pth"
	HG_KEYVAULT_HGGIT=required HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) \
	  $(HGGIT_VENV)/bin/python -m pytest -q tests/test_hggit.py

# The same end-to-end suite (hg, chg and the test bed's hgweb all from that venv) on the older line.
test-compat:
	@$(MAKE) --no-print-directory VENV=$(COMPAT_VENV) HG_VERSION=$(COMPAT_HG_VERSION) \
	  PY_BUILD=compat-build py-test

# The release artefacts: one abi3 wheel for every CPython >= 3.9 on Linux x86_64, and the sdist
# (the extension, the core and the bindings; not the emulator) that builds it anywhere with Rust.
dist: venv
	rm -rf $(DIST)
	$(VENV)/bin/pip install -q --disable-pip-version-check $(ZIGLANG)
	PATH=$(abspath $(VENV))/bin:$$PATH $(VENV)/bin/maturin build -q --release --locked --zig \
	  --compatibility $(MANYLINUX) --out $(DIST)
	$(VENV)/bin/maturin sdist --out $(DIST)
	@ls -l $(DIST)

# Not part of `make test` (it needs the release build); CI runs both.
test-dist: deps emulator
	@ls $(DIST)/hg_keyvault-*.whl >/dev/null 2>&1 || $(MAKE) --no-print-directory dist
	HG_KEYVAULT_WHEEL=$$(ls $(abspath $(DIST))/hg_keyvault-*.whl) HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) \
	  $(PY) -m pytest -q tests/dist_wheel.py

demo: deps build emulator
	HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) $(PY) tests/demo.py

# For docs/quickstart.md: the emulator and the hg server in the background, their variables in
# .work/sandbox/env; stopped by its pid with `make sandbox-stop`.
SANDBOX := .work/sandbox
sandbox: deps build emulator
	@if [ -f $(SANDBOX)/pid ] && kill -0 "$$(cat $(SANDBOX)/pid)" 2>/dev/null; then \
	  echo "the sandbox is already running (pid $$(cat $(SANDBOX)/pid)): . $(SANDBOX)/env"; exit 0; fi; \
	mkdir -p $(SANDBOX) && rm -f $(SANDBOX)/pid $(SANDBOX)/env; \
	HG_KEYVAULT_EMULATOR=$(abspath $(EMULATOR)) nohup $(PY) tests/sandbox.py $(SANDBOX) \
	  > $(SANDBOX)/log 2>&1 < /dev/null & pid=$$!; \
	for i in $$(seq 600); do \
	  [ -f $(SANDBOX)/pid ] && break; \
	  kill -0 $$pid 2>/dev/null || { cat $(SANDBOX)/log; echo "the sandbox did not start"; exit 1; }; \
	  sleep 0.1; \
	done; \
	[ -f $(SANDBOX)/pid ] || { kill $$pid; cat $(SANDBOX)/log; echo "the sandbox was not ready within 60 s"; exit 1; }; \
	cat $(SANDBOX)/log

sandbox-stop:
	@if [ -f $(SANDBOX)/pid ]; then pid=$$(cat $(SANDBOX)/pid); kill "$$pid" 2>/dev/null || true; \
	  for i in $$(seq 300); do kill -0 "$$pid" 2>/dev/null || break; sleep 0.1; done; \
	  if kill -0 "$$pid" 2>/dev/null; then echo "the sandbox (pid $$pid) did not stop within 30 s"; exit 1; fi; \
	  echo "sandbox stopped"; \
	else echo "no sandbox running"; fi

# Fuzzing (not in CI): cargo-fuzz from crates.io, libFuzzer through the libfuzzer-sys crate. It needs
# a nightly toolchain; without one, stable with RUSTC_BOOTSTRAP=1 and no sanitizer.
FUZZ_SECONDS ?= 60
# Stop each target after this many executions instead (FUZZ_SECONDS still bounds it), e.g.
# `make fuzz FUZZ_RUNS=10000000 FUZZ_SECONDS=3600`.
FUZZ_RUNS ?=
# AddressSanitizer by default on nightly. FUZZ_SANITIZER=none is the choice for long execution
# counts: the fuzzed code is safe Rust (no `unsafe` on these paths), whose bounds and overflow checks
# (cargo-fuzz builds with debug assertions) already panic on a memory error, so ASan adds little
# there and costs about half the rate (docs/core.md has the figures).
FUZZ_SANITIZER ?= address
FUZZ_TARGETS := ref_parser origin_matcher config_reader
CARGO_FUZZ := .work/tools/bin/cargo-fuzz
FUZZ_NIGHTLY := $(shell rustup toolchain list 2>/dev/null | grep -q '^nightly' && echo yes)
fuzz:
	test -x $(CARGO_FUZZ) || $(CARGO) install -q --locked --version =0.13.2 --root .work/tools cargo-fuzz
	@mkdir -p .work/reports
	@: > .work/reports/fuzz.txt
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p rust/keyvault-core/fuzz/corpus/$$t; \
	  if [ -n "$(FUZZ_NIGHTLY)" ]; then tc=nightly; san=$(FUZZ_SANITIZER); boot=; else tc=stable; san=none; boot=1; fi; \
	  start=$$(date +%s); \
	  ( cd rust/keyvault-core && RUSTUP_TOOLCHAIN=$$tc RUSTC_BOOTSTRAP=$$boot \
	    $(abspath $(CARGO_FUZZ)) fuzz run --fuzz-dir fuzz -s $$san $$t fuzz/corpus/$$t fuzz/seeds/$$t \
	    -- -max_total_time=$(FUZZ_SECONDS) $(if $(FUZZ_RUNS),-runs=$(FUZZ_RUNS)) -max_len=512 \
	    -print_final_stats=1 ) 2>&1 \
	    | tee .work/fuzz-$$t.log | grep -E "^Done|stat::number_of_executed_units|crash-|panicked" || true; \
	  secs=$$(( $$(date +%s) - start )); \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' .work/fuzz-$$t.log | tail -1); \
	  rate=$$(sed -n 's/^stat::average_exec_per_sec: *//p' .work/fuzz-$$t.log | tail -1); \
	  corpus=$$(ls rust/keyvault-core/fuzz/corpus/$$t | wc -l); \
	  found=$$(ls rust/keyvault-core/fuzz/artifacts/$$t 2>/dev/null | wc -l); \
	  echo "$$t ($$tc, sanitizer $$san): $${runs:-?} executions in $$secs s incl. build ($${rate:-?}/s), corpus $$corpus inputs, $$found findings" \
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
	test -x $(BENCH)/awscli/bin/aws || { python3 -m venv $(BENCH)/awscli && \
	  $(BENCH)/awscli/bin/pip install -q --disable-pip-version-check -r bench/requirements-awscli.txt; }
	$(CARGO) build -q --release -p hg-keyvault-emulator
	$(CARGO) build -q --release -p hg-keyvault-core --example fetch_one
	rm -rf $(BENCH)/wheels
	$(BENCH)/venv/bin/maturin build -q --release -o $(BENCH)/wheels
	$(BENCH)/venv/bin/pip install -q --disable-pip-version-check --force-reinstall --no-deps $(BENCH)/wheels/*.whl
	HG_KEYVAULT_EMULATOR=$(abspath target/release/hg-keyvault-emulator) bench/run.sh

clean:
	rm -rf target .work $(VENV) $(COMPAT_VENV) $(HGGIT_VENV) $(DIST) hgext/hgext3rd/keyvault/*.so
