"""`make bench`: hg-keyvault side by side with its peers, one Markdown table.

Runs inside `dbus-run-session` with an unlocked gnome-keyring (see bench/run.sh), from the bench
venv (.work/bench/venv: hg, our release wheel, mercurial_keyring, the Python SDK) and the Azure
CLI's own venv (.work/bench/az). Starts the release emulator and the authenticated hg server of
the test bed (tests/bed.py), then measures every row of issue 6; medians of RUNS runs, commands
of one row interleaved so that drift hits every column alike. Vault request counts come from the
emulator's request log. Nothing here asserts: it prints what it measured.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import kernel_keys  # noqa: E402
import trustme  # noqa: E402
from bed import Bed, start_bed  # noqa: E402
from hgserver import HG  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
# Which groups of rows to measure (all by default): idle,pull,tokens,fresh,stampede,groups,aws.
ROWS = set(os.environ.get("BENCH_ROWS", "idle,pull,tokens,fresh,stampede,groups,aws").split(","))
# A vault host under Key Vault's public suffix, mapped to 127.0.0.1 by bench/run.sh in a
# private mount namespace's /etc/hosts (never looked up otherwise: no DNS query leaves).
CLOUD_HOST = "hg-keyvault-bench.vault.azure.net"
AZ = Path(os.environ.get("BENCH_AZ", REPO / ".work/bench/az/bin/az"))
FETCH_ONE = REPO / "target/release/examples/fetch_one"
REF = "secret://hg/bench/password"
# The API behind the identity-aware proxy of the token-group rows, and the app role it requires.
PROXY_API = "api://hg-bench-proxy"
PROXY_ROLE = "hg.access"
CACHE_PREFIXES = ("hg-keyvault:token:", "hg-keyvault:challenge:", "hg-keyvault:secret:")
_before_keys: set[int] = set()


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def drop_cache(*prefixes: str) -> None:
    """Drop the cache keys this bench made (never anyone else's)."""
    for p in prefixes or CACHE_PREFIXES:
        for key in kernel_keys.ours(p):
            if key.id not in _before_keys:
                kernel_keys.remove(key)


def forget_tokens() -> None:
    """Drop the bench's cached tokens and challenges: the next command starts with none."""
    drop_cache("hg-keyvault:token:", "hg-keyvault:challenge:")


def run(args, *, env, cwd=None, stdin: bytes = b"", check=True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args], env=env, cwd=cwd, input=stdin, capture_output=True, check=False
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
            f"{proc.stdout.decode(errors='replace')}{proc.stderr.decode(errors='replace')}"
        )
    return proc


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# Median CPU time (user + system, ms) of the children of the last `interleaved` call: on a
# shared machine, less disturbed by other load than wall time.
LAST_CPU: dict[str, float] = {}


def interleaved(
    commands: dict[str, Callable[[], None]],
    runs: int = RUNS,
    prepare: dict[str, Callable[[], None]] | None = None,
) -> dict[str, float]:
    """Median wall time (ms) of each command, run in turns; one untimed warm-up each.

    `prepare[name]`, if given, runs before each run of `name`, outside the timed span: dropping
    the cached tokens reads /proc/keys, whose thousands of keys on a shared machine (every
    test's) once added 15 ms per prefix to the "no cached token" rows."""
    prepare = prepare or {}
    for name, fn in commands.items():
        prepare.get(name, lambda: None)()
        fn()
    samples: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, fn in commands.items():
            prepare.get(name, lambda: None)()
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    LAST_CPU.clear()
    LAST_CPU.update({name: median_ms(c) for name, c in cpu.items()})
    return {name: median_ms(s) for name, s in samples.items()}


class Counter:
    def __init__(self, bed: Bed):
        self.bed = bed
        self.start = len(bed.emulator.requests())

    def since(self) -> list[dict]:
        return self.bed.emulator.requests()[self.start :]

    def vault(self) -> int:
        return sum(1 for r in self.since() if r["target"] == "vault")

    def tokens(self) -> int:
        return sum(1 for r in self.since() if r["target"] in ("token", "identity", "discovery"))


class Setup:
    """The bed, and one hgrc per configuration being compared."""

    def __init__(self, root: Path):
        self.root = root
        # One CA for the bed and the token rows' Apache proxy, so one web.cacerts trusts both.
        self.ca = trustme.CA()
        self.bed = start_bed(root / "bed", ca=self.ca)
        self.emu = self.bed.emulator
        self.server = self.bed.server
        base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("HG", "AZURE_", "IDENTITY_", "MSI_", "REQUESTS_CA"))
        }
        self.home = root / "home"
        self.home.mkdir()
        base_env.update(HOME=str(self.home), LC_ALL="C", HGENCODING="utf-8")
        self.base_env = base_env
        reader = self.emu.principal("reader")
        self.sp_env = {
            "AZURE_TENANT_ID": self.emu.tenant_id,
            "AZURE_CLIENT_ID": reader["client_id"],
            "AZURE_CLIENT_SECRET": reader["client_secret"],
            "AZURE_AUTHORITY_HOST": self.emu.authority_host,
        }
        self.mi_env = {
            "IDENTITY_ENDPOINT": self.emu.identity_endpoint,
            "IDENTITY_HEADER": self.emu.identity_header,
            "AZURE_AUTHORITY_HOST": self.emu.authority_host,
        }
        common = (
            f"[ui]\nusername = Bench <bench@example.com>\n[web]\ncacerts = {self.bed.ca_file}\n"
        )
        vault = (
            "[extensions]\nkeyvault =\n"
            "[keyvault]\n"
            f"url = {self.emu.vault_url}\ncacerts = {self.bed.ca_file}\n"
            "verify-challenge-resource = false\ntimeout = 30\n"
        )
        auth = f"[auth]\ncorp.prefix = {self.server.url}\ncorp.username = {self.server.username}\n"
        noop = self.write("noop_ext.py", '"""a no-op extension: the floor any extension pays"""\n')
        self.package = Path(native_path()).parent
        by_path = vault.replace("keyvault =\n", f"keyvault = {self.package}\n")
        self.hgrc = {
            "none": self.write("none.hgrc", common),
            "noop": self.write("noop.hgrc", common + f"[extensions]\nnoop = {noop}\n"),
            "path": self.write("path.hgrc", common + by_path + auth + f"corp.vault = {REF}\n"),
            "plain": self.write(
                "plain.hgrc", common + auth + f"corp.password = {self.server.password}\n"
            ),
            "ours": self.write("ours.hgrc", common + vault + auth + f"corp.vault = {REF}\n"),
            "keyring": self.write(
                "keyring.hgrc", common + "[extensions]\nmercurial_keyring =\n" + auth
            ),
        }
        # The same vault under a public-cloud name (bench/run.sh maps it to 127.0.0.1 in a
        # private /etc/hosts): the host names the token scope, no challenge probe.
        self.cloud_url = None
        if cloud_host_mapped():
            port = self.emu.vault_url.rstrip("/").rsplit(":", 1)[1]
            self.cloud_url = f"https://{CLOUD_HOST}:{port}/"
            cloud = vault.replace(f"url = {self.emu.vault_url}", f"url = {self.cloud_url}")
            cloud = cloud.replace("verify-challenge-resource = false", "")
            self.hgrc["cloud"] = self.write(
                "cloud.hgrc", common + cloud + auth + f"corp.vault = {REF}\n"
            )

    def write(self, name: str, text: str) -> Path:
        path = self.root / name
        path.write_text(text)
        return path

    def env(self, config: str, identity: dict | None = None) -> dict:
        env = dict(self.base_env, HGRCPATH=str(self.hgrc[config]))
        env.update(identity if identity is not None else self.mi_env)
        return env


def provision(s: Setup) -> None:
    env = s.env("ours", {**s.mi_env})
    run([HG, "vault", "set", REF], env=env, stdin=s.server.password.encode())


def keyring_seed(s: Setup, work: Path) -> None:
    """mercurial_keyring's own flow: it prompts once and stores the password in gnome-keyring."""
    env = s.env("keyring")
    answers = f"{s.server.password}\n".encode()
    run(
        [HG, "pull", "--config", "ui.interactive=true", "--config", "ui.nontty=true"],
        env=env,
        cwd=work,
        stdin=answers,
    )
    probe = run([HG, "pull", "--debug"], env=env, cwd=work)
    if b"keyring: " not in probe.stdout + probe.stderr:
        raise RuntimeError("mercurial_keyring did not take the password from the keyring")


# -- rows -------------------------------------------------------------------------------------


IDLE = (("`hg status`", ["status"]), ("`hg log -r .`", ["log", "-r", "."]))
# The idle columns: no extension, a no-op extension by path (the floor of any extension),
# hg-keyvault enabled by name and by path.
IDLE_CONFIGS = ("none", "noop", "ours", "path")


def idle_rows(s: Setup, work: Path) -> list[dict]:
    rows = []
    for label, args in IDLE:
        t = interleaved(
            {
                name: (lambda n=name, a=args: run([HG, *a], env=s.env(n), cwd=work))
                for name in (*IDLE_CONFIGS, "keyring")
            }
        )
        cpu_ratio = LAST_CPU["ours"] / LAST_CPU["none"]
        rows.append(
            row(
                f"{label}, extension enabled vs not loaded",
                ours=t["ours"],
                ours_text=f"{t['ours']:.1f} ms (by path {t['path']:.1f} ms)",
                base=t["none"],
                base_text=f"{t['none']:.1f} ms (no-op extension {t['noop']:.1f} ms)",
                keyring=t["keyring"],
                ratio_text=f"{t['ours'] / t['none']:.3f} (CPU time {cpu_ratio:.3f}; "
                f"vs no-op {t['ours'] / t['noop']:.3f})",
                target="≤ 1.02",
                met=t["ours"] / t["none"] <= 1.02,
                unit="ms",
            )
        )
    return rows


def age_working_copy(work: Path) -> None:
    """Date the working copy's files an hour back and let `hg status` record them clean: files
    written in the dirstate's own second are "unsure" and read again by every later `status`,
    which would make the idle rows depend on when the clone happened."""
    past = time.time() - 3600
    for path in work.rglob("*"):
        if ".hg" not in path.relative_to(work).parts and path.is_file():
            os.utime(path, (past, past))
    run([HG, "status"], env=dict(os.environ, HGRCPATH=os.devnull), cwd=work)


def callgrind_instructions(args: list, env: dict, cwd: Path) -> int:
    """Instructions of one command under callgrind (deterministic with a fixed hash seed)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out", *args],
            env=env,
            cwd=cwd,
        )
    text = proc.stderr.decode(errors="replace")
    for line in text.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1])
    raise RuntimeError(f"no instruction count from callgrind:\n{text}")


def instruction_rows(s: Setup, work: Path) -> list[dict]:
    """The idle rows in instructions: they do not swing with the machine's load as wall time
    does. One run each after a warm-up that writes the no-op extension's .pyc (the wheel's
    were compiled at install)."""
    if not shutil.which("valgrind"):
        return [
            row(
                "idle rows in instructions",
                ours_text="n/a: valgrind not installed",
                target="—",
                met=False,
            )
        ]
    age_working_copy(work)
    rows = []
    for label, args in IDLE:
        counts = {}
        for name in IDLE_CONFIGS:
            env = dict(s.env(name), PYTHONHASHSEED="0")
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            run([HG, *args], env=env, cwd=work)
            counts[name] = callgrind_instructions([HG, *args], env, work)
        m = {k: v / 1e6 for k, v in counts.items()}
        by_name, by_path = counts["ours"] / counts["none"], counts["path"] / counts["none"]
        vs_noop = counts["ours"] / counts["noop"]
        rows.append(
            row(
                f"{label}: instructions (callgrind), enabled by name vs not loaded / vs a no-op "
                "extension by path",
                ours_text=f"{m['ours']:.1f} M (by path {m['path']:.1f} M)",
                base_text=f"{m['none']:.1f} M (no-op extension {m['noop']:.1f} M)",
                ratio_text=f"{by_name:.4f} / {vs_noop:.4f} (by path: {by_path:.4f} / "
                f"{counts['path'] / counts['noop']:.4f})",
                target="≤ 1.005 / ≤ 1.003",
                met=by_name <= 1.005 and vs_noop <= 1.003,
            )
        )
    return rows


def pull_rows(s: Setup, work: Path) -> list[dict]:
    def ours_warm():
        run([HG, "pull"], env=s.env("ours"), cwd=work)

    def ours_cold():
        run([HG, "pull"], env=s.env("ours"), cwd=work)

    plain = lambda: run([HG, "pull"], env=s.env("plain"), cwd=work)  # noqa: E731
    keyring = lambda: run([HG, "pull"], env=s.env("keyring"), cwd=work)  # noqa: E731
    t = interleaved(
        {"plain": plain, "warm": ours_warm, "cold": ours_cold, "keyring": keyring},
        prepare={"cold": forget_tokens},
    )
    # Request counts of one more warm and one more cold command.
    c = Counter(s.bed)
    ours_warm()
    warm = (c.vault(), c.tokens())
    forget_tokens()
    c = Counter(s.bed)
    ours_cold()
    cold = (c.vault(), c.tokens())
    return [
        time_ratio_row(
            "authenticated `hg pull` (nothing new), warm token cache vs plaintext `[auth]`",
            t["warm"],
            t["plain"],
            1.10,
            keyring=t["keyring"],
        ),
        time_ratio_row(
            "the same, no cached token (first command of a CI job) vs plaintext",
            t["cold"],
            t["plain"],
            1.30,
            keyring=t["keyring"],
        ),
        row(
            "requests per `hg pull`: warm token cache / cold (vault + token)",
            ours_text=f"{warm[0]} + {warm[1]} / {cold[0]} + {cold[1]}",
            keyring_text="0 (local keyring)",
            target="1 per secret / ≤ 3 in all",
            met=warm == (1, 0) and sum(cold) <= 3,
        ),
    ]


NATIVE_FETCH = """
import importlib.machinery, importlib.util, os, sys
path = sys.argv[1]
loader = importlib.machinery.ExtensionFileLoader("hgext3rd.keyvault._native", path)
spec = importlib.util.spec_from_file_location("hgext3rd.keyvault._native", path, loader=loader)
native = importlib.util.module_from_spec(spec)
loader.exec_module(native)
vault = native.Vault(sys.argv[2], cacerts=sys.argv[3], verify_challenge_resource=False)
value, props = vault.get(sys.argv[4])
print(len(value))
"""

SDK_FETCH = """
import os, sys
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient
cred = ClientSecretCredential(os.environ["AZURE_TENANT_ID"], os.environ["AZURE_CLIENT_ID"],
    os.environ["AZURE_CLIENT_SECRET"], authority=sys.argv[3], disable_instance_discovery=True,
    connection_verify=sys.argv[2])
client = SecretClient(sys.argv[1], cred, verify_challenge_resource=False,
    connection_verify=sys.argv[2])
print(len(client.get_secret(sys.argv[4]).value))
"""


def cloud_host_mapped() -> bool:
    """Whether bench/run.sh mapped CLOUD_HOST to 127.0.0.1 (looked up only then)."""
    if os.environ.get("BENCH_CLOUD_HOST") != CLOUD_HOST:
        return False
    import socket

    try:
        return socket.gethostbyname(CLOUD_HOST) == "127.0.0.1"
    except OSError:
        return False


def native_path() -> str:
    out = run(
        [
            sys.executable,
            "-c",
            "import importlib.util as u; "
            "print(u.find_spec('hgext3rd.keyvault').submodule_search_locations[0])",
        ],
        env=os.environ.copy(),
    )
    pkg = Path(out.stdout.decode().strip())
    return str(next(pkg.glob("_native*.so")))


def az_setup(s: Setup) -> tuple[Callable[[], None] | None, str]:
    """Point az at the emulator; returns a fetch function, or None and why not.

    What works (az 2.91): `core.instance_discovery=false` (else MSAL asks
    login.microsoftonline.com), a cloud registered with `--skip-endpoint-discovery` (else az
    fetches ARM metadata from the resource manager endpoint) whose Entra endpoint is the
    emulator, and REQUESTS_CA_BUNDLE for the test CA. `az login --service-principal` gets its
    token and stores the credential, then fails listing subscriptions on ARM, which the emulator
    does not emulate; the bench writes the tenant-level account az would have written
    (azureProfile.json), and `az keyvault secret show --id` then works unchanged (az passes
    verify_challenge_resource=False itself)."""
    if not AZ.exists():
        return None, f"az not installed ({AZ})"
    azdir = s.root / "azure-config"
    env = dict(s.base_env, AZURE_CONFIG_DIR=str(azdir), REQUESTS_CA_BUNDLE=str(s.bed.ca_file))
    env["AZURE_CORE_COLLECT_TELEMETRY"] = "false"
    env["AZURE_CORE_ONLY_SHOW_ERRORS"] = "true"
    env["AZURE_CORE_NO_COLOR"] = "true"
    env["AZURE_CORE_SURVEY_MESSAGE"] = "false"
    auth = s.emu.authority_host
    steps = [
        ["config", "set", "core.instance_discovery=false"],
        [
            "cloud",
            "register",
            "-n",
            "Emulator",
            "--skip-endpoint-discovery",
            "--endpoint-resource-manager",
            auth + "/",
            "--endpoint-active-directory",
            auth,
            "--endpoint-active-directory-resource-id",
            "https://management.core.windows.net/",
            "--suffix-keyvault-dns",
            ".vault.azure.net",
        ],
        ["cloud", "set", "-n", "Emulator"],
    ]
    for step in steps:
        proc = run([AZ, *step], env=env, check=False)
        if proc.returncode != 0:
            return None, f"`az {' '.join(step[:2])}` failed: {last_line(proc)}"
    reader = s.emu.principal("reader")
    tenant = s.emu.tenant_id
    # Fails at the ARM subscription listing (see above), after storing the credential.
    run(
        [AZ, "login", "--service-principal", "-u", reader["client_id"], "--tenant", tenant]
        + ["--allow-no-subscriptions", "-p", reader["client_secret"]],
        env=env,
        check=False,
    )
    account = {
        "id": tenant,
        "name": "N/A(tenant level account)",
        "state": "Enabled",
        "user": {"name": reader["client_id"], "type": "servicePrincipal"},
        "isDefault": True,
        "tenantId": tenant,
        "environmentName": "Emulator",
        "homeTenantId": tenant,
        "managedByTenants": [],
    }
    profile = {"installationId": "00000000-0000-4000-8000-000000000bec", "subscriptions": [account]}
    (azdir / "azureProfile.json").write_text(json.dumps(profile))
    name = secret_name(s)
    secret_id = f"{s.emu.vault_url}secrets/{name}"
    args = [AZ, "keyvault", "secret", "show", "--id", secret_id, "-o", "none"]
    proc = run(args, env=env, check=False)
    if proc.returncode != 0:
        return None, f"`az keyvault secret show` against the emulator failed: {last_line(proc)}"
    return (lambda: run(args, env=env)), ""


def last_line(proc) -> str:
    text = (proc.stderr or proc.stdout).decode(errors="replace").strip().splitlines()
    return text[-1][:300] if text else f"exit {proc.returncode}"


def secret_name(s: Setup) -> str:
    from hgext3rd.keyvault import _native

    return _native.secret_name(REF)


def fresh_process_rows(s: Setup) -> tuple[list[dict], dict]:
    so = native_path()
    ca = str(s.bed.ca_file)
    url = s.emu.vault_url
    name = secret_name(s)
    env = dict(s.base_env, **s.sp_env)
    ours_py = [sys.executable, "-I", "-S", "-c", NATIVE_FETCH, so, url, ca, REF]
    sdk = [sys.executable, "-c", SDK_FETCH, url, ca, s.emu.authority_host, name]
    rust = [FETCH_ONE, url, ca, REF]

    def cold_py():
        run(ours_py, env=env)

    commands = {"py": lambda: run(ours_py, env=env)}
    # The cloud-named cold fetch before the plain cold one, whose fetch leaves the token that
    # the next round's warm "py" finds (each cold run drops every cached token of the bench).
    if s.cloud_url:
        ours_cloud = [sys.executable, "-I", "-S", "-c", NATIVE_FETCH, so, s.cloud_url, ca, REF]

        def cold_cloud():
            run(ours_cloud, env=env)

        commands["py_cloud_cold"] = cold_cloud
    commands |= {
        "py_cold": cold_py,
        "rust": lambda: run(rust, env=env),
        "sdk": lambda: run(sdk, env=env),
        "bare": lambda: run([sys.executable, "-I", "-S", "-c", "pass"], env=env),
    }
    az_fetch, az_why = az_setup(s)
    if az_fetch:
        commands["az"] = az_fetch
    untimed = {"py_cold": forget_tokens, "py_cloud_cold": forget_tokens}
    t = interleaved(commands, prepare=untimed)
    counts = {}
    for key in ("py", "sdk") + (("az",) if az_fetch else ()):
        c = Counter(s.bed)
        commands[key]()
        counts[key] = (c.vault(), c.tokens())
    for key in ("py_cloud_cold", "py_cold"):
        if key in commands:
            forget_tokens()
            c = Counter(s.bed)
            commands[key]()
            counts[key] = (c.vault(), c.tokens())
    az_ms = t.get("az")
    sdk_x = t["sdk"] / t["py"]
    az_x = az_ms / t["py"] if az_ms else None
    rows = [
        row(
            "one secret, fresh process: `python -I -S` loading only `_native` (warm token cache) "
            "vs Python SDK vs `az keyvault secret show`",
            ours=t["py"],
            sdk=t["sdk"],
            az=az_ms,
            az_text=None if az_ms else f"n/a: {az_why}",
            ratio_text=f"SDK {sdk_x:.1f}x" + (f", az {az_x:.1f}x" if az_x else ""),
            target="≥ 10x (SDK), ≥ 20x (az)",
            met=sdk_x >= 10 and (az_x is None or az_x >= 20),
            unit="ms",
        ),
        row(
            "the same, no cached token",
            ours=t["py_cold"],
            sdk=t["sdk"],
            az=az_ms,
            ratio_text=f"SDK {t['sdk'] / t['py_cold']:.1f}x"
            + (f", az {az_ms / t['py_cold']:.1f}x" if az_ms else ""),
            target="≥ 10x (SDK), ≥ 20x (az)",
            met=t["sdk"] / t["py_cold"] >= 10 and (not az_ms or az_ms / t["py_cold"] >= 20),
            unit="ms",
        ),
    ]
    if "py_cloud_cold" in t:
        cold = t["py_cloud_cold"]
        rows.append(
            row(
                f"the same, no cached token, vault at {CLOUD_HOST} (no challenge probe): "
                "requests (vault + token) {} + {}".format(*counts["py_cloud_cold"]),
                ours=cold,
                sdk=t["sdk"],
                az=az_ms,
                ratio_text=f"SDK {t['sdk'] / cold:.1f}x"
                + (f", az {az_ms / cold:.1f}x" if az_ms else ""),
                target="≥ 10x (SDK), ≥ 20x (az)",
                met=t["sdk"] / cold >= 10 and (not az_ms or az_ms / cold >= 20),
                unit="ms",
            )
        )
    rows += [
        row(
            "one secret, fresh process: small Rust binary on the core (warm token cache)",
            ours=t["rust"],
            sdk=t["sdk"],
            az=az_ms,
            ratio_text=f"SDK {t['sdk'] / t['rust']:.1f}x"
            + (f", az {az_ms / t['rust']:.1f}x" if az_ms else ""),
            target="≥ 10x (SDK), ≥ 20x (az)",
            met=t["sdk"] / t["rust"] >= 10 and (not az_ms or az_ms / t["rust"] >= 20),
            unit="ms",
        ),
        row(
            "requests per fresh-process fetch (vault + token): ours warm / ours cold",
            ours_text="{} + {} / {} + {}".format(*counts["py"], *counts["py_cold"]),
            sdk_text="{} + {}".format(*counts["sdk"]),
            az_text="{} + {}".format(*counts["az"]) if "az" in counts else "n/a",
            target="1 / ≤ 3",
            met=counts["py"] == (1, 0) and sum(counts["py_cold"]) <= 3,
        ),
    ]
    notes = {"python_startup_ms": t["bare"]}
    return rows, notes


def stampede_rows(s: Setup, work: Path) -> list[dict]:
    """64 `hg pull` at once, managed identity, an emulator that throttles like Azure: the
    vault at Key Vault's 4000 GETs per 10 s, the identity endpoint at IMDS's 5 per second."""
    s.emu.set_faults(
        [
            {"target": "vault", "kind": "rate-limit", "limit": 4000, "window_ms": 10000},
            {"target": "identity", "kind": "rate-limit", "limit": 5, "window_ms": 1000},
            {"target": "token", "kind": "rate-limit", "limit": 5, "window_ms": 1000},
        ]
    )
    rows = []
    try:
        nothing = ("hg-keyvault:token:", "hg-keyvault:challenge:")
        cases = [
            ("nothing cached", nothing, "ours"),
            ("token expired, challenge known", ("hg-keyvault:token:",), "ours"),
        ]
        if "cloud" in s.hgrc:
            cases.append((f"nothing cached, vault at {CLOUD_HOST}", nothing, "cloud"))
        for label, prefixes, config in cases:
            drop_cache(*prefixes)
            c = Counter(s.bed)
            start = time.perf_counter()
            errs = [tempfile.TemporaryFile() for _ in range(64)]
            procs = [
                subprocess.Popen(
                    [HG, "pull"], cwd=work, env=s.env(config), stdout=subprocess.DEVNULL, stderr=e
                )
                for e in errs
            ]
            codes = [p.wait(timeout=300) for p in procs]
            elapsed = time.perf_counter() - start
            failures = sum(1 for c in codes if c != 0)
            why = set()
            for code, e in zip(codes, errs):
                e.seek(0)
                lines = e.read().decode(errors="replace").strip().splitlines()
                e.close()
                if code != 0 and lines:
                    why.add(lines[0][:160])
            if why:
                log(f"{label}: failures: {sorted(why)}")
            vault, tokens = c.vault(), c.tokens()
            throttled = sum(1 for r in c.since() if r["status"] == 429)
            rows.append(
                row(
                    f"64 `hg pull` started at once, {label} (throttling emulator)",
                    ours_text=f"{failures} failures, {vault} vault + {tokens} token requests"
                    f" ({throttled} throttled), {elapsed:.1f} s in all"
                    + (f"; failures: {'; '.join(sorted(why))}" if why else ""),
                    target="0 failures, vault ≤ 64, token ≤ 2",
                    met=failures == 0 and vault <= 64 and tokens <= 2,
                )
            )
    finally:
        s.emu.clear_faults()
    return rows


def many_groups_rows(s: Setup) -> list[dict]:
    from hgext3rd.keyvault import _native

    officer = s.emu.principal("officer")
    env_backup = {k: os.environ.get(k) for k in s.sp_env}
    os.environ.update(
        AZURE_TENANT_ID=s.emu.tenant_id,
        AZURE_CLIENT_ID=officer["client_id"],
        AZURE_CLIENT_SECRET=officer["client_secret"],
        AZURE_AUTHORITY_HOST=s.emu.authority_host,
    )
    try:
        admin = _native.Vault(
            s.emu.vault_url, cacerts=str(s.bed.ca_file), verify_challenge_resource=False
        )
        refs = [f"secret://hg/bench/group/{i}" for i in range(200)]
        for r in refs:
            admin.set(r, b"not-a-real-password")
    finally:
        for k, v in env_backup.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    results = {}
    for n in (50, 200):
        groups = "".join(
            f"g{i}.prefix = https://host{i}.example/\ng{i}.username = u\ng{i}.vault = {refs[i]}\n"
            for i in range(n)
        )
        hgrc = s.write(f"groups{n}.hgrc", s.hgrc["ours"].read_text() + groups)
        env = dict(s.env("ours"), HGRCPATH=str(hgrc))
        cmd = lambda env=env: run([HG, "vault"], env=env)  # noqa: E731
        t = interleaved({"vault": cmd}, runs=max(10, RUNS // 2))
        c = Counter(s.bed)
        cmd()
        requests = sum(1 for r in c.since() if r["target"] == "vault")
        # Concurrency, in a run of its own: with 20 ms per GET, overlaps show in the log.
        s.emu.set_faults([{"target": "vault", "kind": "latency", "latency_ms": 20}])
        try:
            c = Counter(s.bed)
            cmd()
            in_flight = max_in_flight([r for r in c.since() if r["target"] == "vault"])
        finally:
            s.emu.clear_faults()
        results[n] = (t["vault"], requests, in_flight)
    ms, requests, in_flight = results[200]
    # Expected: one ping, then one GET per group (the n groups plus the bench's own `corp`).
    return [
        row(
            "`hg vault status` with 200 configured groups (+1: the bench's own; 50 for comparison)",
            ours=ms,
            ours_text=f"{ms:.0f} ms; {requests} vault requests (50 groups: {results[50][1]},"
            f" {results[50][0]:.0f} ms); at most {in_flight} in flight",
            target="≤ 1 s, linear, bounded",
            met=ms <= 1000 and requests == 202 and results[50][1] == 52 and in_flight <= 8,
        )
    ]


def max_in_flight(entries: list[dict]) -> int:
    from datetime import datetime

    events = []
    for e in entries:
        start = datetime.fromisoformat(e["time"].replace("Z", "+00:00")).timestamp()
        events += [(start, 1), (start + e["duration_ms"] / 1000, -1)]
    most = now = 0
    for _, step in sorted(events, key=lambda x: (x[0], x[1])):
        now += step
        most = max(most, now)
    return most


# -- table ------------------------------------------------------------------------------------


def row(what: str, *, target: str, met: bool, unit: str = "", **cells) -> dict:
    def cell(name):
        text = cells.get(f"{name}_text")
        if text is not None:
            return text
        value = cells.get(name)
        return "—" if value is None else f"{value:.1f} {unit}".strip()

    ratio = cells.get("ratio_text") or (
        f"{cells['ratio']:.3f}" if cells.get("ratio") is not None else "—"
    )
    return {
        "row": what,
        "ours": cell("ours"),
        "baseline": cell("base"),
        "mercurial_keyring": cell("keyring"),
        "Python SDK": cell("sdk"),
        "az": cell("az"),
        "ratio": ratio,
        "target": target,
        "met": "yes" if met else "**no**",
    }


def time_ratio_row(what: str, ours: float, base: float, at_most: float, **cells) -> dict:
    """A row of two wall times in ms whose ratio ours/base must stay at or under ``at_most``."""
    return row(
        what,
        ours=ours,
        base=base,
        ratio=ours / base,
        target=f"≤ {at_most:.2f}",
        met=ours / base <= at_most,
        unit="ms",
        **cells,
    )


def print_table(rows: list[dict]) -> None:
    cols = ["row", "ours", "baseline", "mercurial_keyring", "Python SDK", "az"]
    cols += ["ratio", "target", "met"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "|".join("---" for _ in cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |")


def scoped_token(s: Setup, scope: str) -> str:
    """An Entra token of the bench's managed identity for ``scope``: the plaintext baseline's
    password (what a job would paste into an hgrc without hg-keyvault)."""
    from hgext3rd.keyvault import _native

    saved = dict(os.environ)
    os.environ.update(s.mi_env)
    try:
        session = _native.TokenSession(cacerts=str(s.bed.ca_file), token_cache=False)
        return session.token(scope)[0]
    finally:
        os.environ.clear()
        os.environ.update(saved)


def token_rows(s: Setup) -> list[dict]:
    """Issue 13's row: a token group (the job's own Entra token, warm token cache) through a real
    identity-aware proxy (Apache + mod_auth_openidc, tests/servers/tokenproxy.py) vs stock hg
    sending the same kind of token as a plaintext Basic password to the same proxy. The proxy
    takes tokens as Basic passwords only here: stock hg cannot answer a ``Bearer`` challenge
    (urllib's digest handler raises ValueError), so that is the one setup both can use."""
    from servers.tokenproxy import start_token_proxy

    s.emu.register_app(PROXY_API, roles={PROXY_ROLE: ["managed"]})
    managed = s.emu.principal("managed")["object_id"]
    with start_token_proxy(
        s.root / "apache",
        emulator=s.emu,
        audience=PROXY_API,
        required_role=PROXY_ROLE,
        allow_push=managed,
        accept="basic",
        ca=s.ca,
    ) as proxy:
        common = f"[ui]\nusername = Bench <bench@example.com>\n[web]\ncacerts = {s.bed.ca_file}\n"
        token = scoped_token(s, PROXY_API + "/.default")
        s.hgrc["token-plain"] = s.write(
            "token-plain.hgrc",
            common + f"[auth]\np.prefix = {proxy.url}\np.username = ci-bot\np.password = {token}\n",
        )
        s.hgrc["token-ours"] = s.write(
            "token-ours.hgrc",
            common
            + f"[extensions]\nkeyvault =\n[keyvault]\ncacerts = {s.bed.ca_file}\ntimeout = 30\n"
            + f"[auth]\np.prefix = {proxy.url}\np.entra-scope = {PROXY_API}\n"
            + "p.token-as = basic\np.username = ci-bot\n",
        )
        work = s.root / "token-work"
        run([HG, "clone", proxy.repo_url(), str(work)], env=s.env("token-plain"))
        plain = lambda: run([HG, "pull"], env=s.env("token-plain"), cwd=work)  # noqa: E731
        ours = lambda: run([HG, "pull"], env=s.env("token-ours"), cwd=work)  # noqa: E731
        ours()  # the first command fetches the token; the rows measure warm commands
        t = interleaved({"plain": plain, "ours": ours})
        c = Counter(s.bed)
        ours()
        warm_entra = c.tokens()
    return [
        time_ratio_row(
            "authenticated `hg pull` through an Entra-validating proxy: token group (warm "
            "cache, token-as basic) vs the same kind of token as a plaintext `[auth]` password",
            t["ours"],
            t["plain"],
            1.05,
        ),
        row(
            "requests to Entra per warm `hg pull` of a token group",
            ours_text=str(warm_entra),
            target="0",
            met=warm_entra == 0,
        ),
    ]


def main() -> int:
    if not kernel_keys.available():
        log("kernel keyutils unavailable: the token cache falls back to the process")
    _before_keys.update(k.id for p in CACHE_PREFIXES for k in kernel_keys.ours(p))
    root = Path(tempfile.mkdtemp(prefix="hg-keyvault-bench-"))
    s = None
    try:
        log(f"starting the emulator and the hg server under {root}")
        s = Setup(root)
        provision(s)
        work = root / "work"
        run([HG, "clone", s.server.repo_url(), str(work)], env=s.env("plain"))
        keyring_seed(s, work)
        age_working_copy(work)
        rows = []
        notes = {}
        if "idle" in ROWS:
            log("idle commands")
            rows += idle_rows(s, work)
            log("idle commands in instructions (callgrind)")
            rows += instruction_rows(s, work)
        if "pull" in ROWS:
            log("authenticated pull")
            rows += pull_rows(s, work)
        if "tokens" in ROWS:
            log("authenticated pull with a token group through Apache + mod_auth_openidc")
            rows += token_rows(s)
        if "fresh" in ROWS:
            log("fresh-process fetch (ours, Python SDK, az)")
            fresh, notes = fresh_process_rows(s)
            rows += fresh
        if "stampede" in ROWS:
            log("64 processes at once")
            rows += stampede_rows(s, work)
        if "groups" in ROWS:
            log("hg vault with 200 groups")
            rows += many_groups_rows(s)
        if "aws" in ROWS:
            log("AWS Secrets Manager (moto): warm pull, fresh-process fetch vs boto3 and aws")
            from aws_rows import aws_rows

            rows += aws_rows(
                s,
                work,
                run=run,
                interleaved=interleaved,
                row=row,
                time_ratio_row=time_ratio_row,
                log=log,
                repo=REPO,
            )
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\nMedians of {RUNS} runs (hg vault rows: {max(10, RUNS // 2)}), release builds, "
            f"{os.cpu_count()} CPUs, load average at the end {load}; bare "
            f"`python -I -S -c pass` takes {notes.get('python_startup_ms', float('nan')):.1f} ms "
            "here.\n"
        )
        print_table(rows)
        json.dump(rows, open(REPO / ".work/bench/last.json", "w"), indent=1)
        return 0
    finally:
        if s is not None:
            s.bed.stop()
        drop_cache()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
