#!/usr/bin/env python3
"""Do the debug builds of `make test` still share one compiled dependency tree?

Resolves (without compiling) the three cargo invocations of `make test` that build code: the
emulator (`cargo build -p hg-keyvault-emulator`), the bindings as `make build` has maturin build
them, and `cargo test --workspace`; then lists every compilation unit the first two need that the
third does not make, with the features `cargo test --workspace` resolves for that dependency (what
rust/workspace-hack/Cargo.toml should ask for). Exit status 1 if there is any.

It reads cargo's unit graph, an unstable output: RUSTC_BOOTSTRAP=1 lets stable cargo print it (it
only resolves here, it compiles nothing).
"""

import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVOCATIONS = {
    "emulator": ["build", "-p", "hg-keyvault-emulator"],
    "bindings": ["build", "-p", "hg-keyvault-py", "--lib", "--features", "workspace-hack"],
    "tests": ["test", "--workspace", "--no-run"],
}


def unit_graph(args):
    out = subprocess.run(
        ["cargo", *args, "--unit-graph", "-Z", "unstable-options"],
        cwd=ROOT,
        env={**os.environ, "RUSTC_BOOTSTRAP": "1"},
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)["units"]


def identities(units):
    """What makes cargo compile a unit again: itself, its profile, features and its dependencies."""
    memo = {}

    def ident(i):
        if i not in memo:
            u = units[i]
            profile = {k: v for k, v in u["profile"].items() if k != "name"}
            key = [u["pkg_id"], u["target"], u["mode"], profile, sorted(u["features"])]
            key.append(sorted(ident(d["index"]) for d in u["dependencies"]))
            memo[i] = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        return memo[i]

    return {ident(i): u for i, u in enumerate(units)}


def main():
    graphs = {name: identities(unit_graph(args)) for name, args in INVOCATIONS.items()}
    tests = graphs.pop("tests")
    features = {}
    for u in tests.values():
        features.setdefault(u["pkg_id"], set()).add(tuple(sorted(u["features"])))
    extra = 0
    for name, graph in graphs.items():
        for ident, u in graph.items():
            if ident in tests or u["pkg_id"].startswith("path+"):
                continue
            extra += 1
            pkg = u["pkg_id"].split("#")[-1]
            wanted = sorted(features.get(u["pkg_id"], ()))
            print(f"{name}: {pkg} ({u['target']['name']}, {u['mode']}) features {u['features']}")
            print(f"    cargo test --workspace builds it with: {wanted or 'not at all'}")
    if extra:
        print(f"{extra} units compiled again: update rust/workspace-hack/Cargo.toml (the features")
        print("above; a proc-macro's dependency goes under [build-dependencies])")
        return 1
    print("the emulator and the bindings reuse the dependency builds of cargo test --workspace")
    return 0


if __name__ == "__main__":
    sys.exit(main())
