"""A real authenticated Mercurial HTTPS server for tests.

hgweb (Mercurial's WSGI app) runs under gunicorn on a private unix socket; nginx in front of it
terminates TLS on 127.0.0.1 with a certificate signed by a trustme CA and enforces HTTP Basic
auth from an htpasswd file. Everything (config, certificates, pid files, logs, nginx temp dirs,
repositories) lives in one work directory, and both servers are stopped by pid.

How the authenticated user reaches hgweb: hgweb reads ``environ['REMOTE_USER']`` (push
permission, ``web.allow-push``). A reverse proxy can only send headers, and gunicorn turns every
header into ``HTTP_*`` (even one named ``REMOTE_USER`` listed in ``forwarder_headers`` ends up as
``HTTP_REMOTE_USER``). So nginx always sets ``X-Remote-User: $remote_user`` (which replaces any
copy sent by the client) and the generated WSGI module moves ``HTTP_X_REMOTE_USER`` into
``REMOTE_USER``. Only nginx can reach gunicorn: the socket is in a private directory and is
created with umask 077.

The password never appears in a process's argv: htpasswd reads it from stdin.
"""

from __future__ import annotations

import contextlib
import errno
import grp
import http.client
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme

REALM = "hg-keyvault test"
VENV_BIN = Path(sys.executable).parent
HG = str(VENV_BIN / "hg") if (VENV_BIN / "hg").exists() else (shutil.which("hg") or "hg")
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
HTPASSWD = shutil.which("htpasswd") or "/usr/bin/htpasswd"

# A path served by the WSGI wrapper itself (behind nginx's auth), telling what hgweb would see.
WHOAMI_PATH = "/.hgserver/whoami"

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
PORT_ATTEMPTS = 5
# AF_UNIX paths are limited to 108 bytes on Linux, including the terminating NUL.
MAX_UNIX_PATH = 100


class HgServerError(RuntimeError):
    """The test server could not be started."""


@dataclass
class HgServer:
    url: str  # https://localhost:PORT/ ; repositories are url + name
    ca_file: str  # PEM of the CA that signed the server certificate
    username: str
    password: str = field(repr=False)
    access_log: Path  # nginx access log, one JSON object per request (see ``requests()``)
    workdir: Path
    port: int
    repos_dir: Path
    nginx_error_log: Path
    gunicorn_error_log: Path
    redirect_to: str | None = None
    # http://localhost:PORT/ when started with plain_http: the same site without TLS.
    http_url: str | None = None
    _nginx: subprocess.Popen | None = field(default=None, repr=False)
    _gunicorn: subprocess.Popen | None = field(default=None, repr=False)
    _private_dir: Path | None = field(default=None, repr=False)

    @property
    def nginx_pid(self) -> int | None:
        return self._nginx.pid if self._nginx else None

    @property
    def gunicorn_pid(self) -> int | None:
        return self._gunicorn.pid if self._gunicorn else None

    def repo_url(self, name: str = "repo") -> str:
        return self.url + name

    def repo_path(self, name: str = "repo") -> Path:
        return self.repos_dir / name

    def redirect_url(self, name: str = "repo", *, auth: bool = True) -> str:
        """A URL that answers 302 to ``redirect_to + name`` (after Basic auth if ``auth``)."""
        if self.redirect_to is None:
            raise ValueError("server was started without redirect_to")
        return self.url + ("redirect/" if auth else "redirect-noauth/") + name

    def requests(self) -> list[dict[str, Any]]:
        """The access log so far: dicts with time, remote_user, has_auth (0/1), method, uri,
        cmd (hg wire command), status, bytes, request_time, upstream_status, host."""
        return server_requests(self)

    def add_repo(self, name: str, *, seed: bool = True) -> str:
        """Create another repository; hgweb rescans on every request, no restart needed."""
        _init_repo(self.repos_dir / name, seed=seed, env=_server_env(self.workdir))
        return self.repo_url(name)

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def basic_auth_header(self) -> str:
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        return "Basic " + token

    def is_running(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self._nginx, self._gunicorn))

    # What start_nginx() needs of a site besides its fields (tests/servers/gitserver.py too).
    def backends(self) -> list[tuple[str, subprocess.Popen | None]]:
        return [("gunicorn", self._gunicorn)]

    def backend_logs(self) -> list[Path]:
        return [self.gunicorn_error_log]

    def ready_probe(self) -> tuple[str, Callable[[int, bytes], bool]]:
        """A path behind the auth, and what its answer is once the whole chain serves."""
        return (
            WHOAMI_PATH,
            lambda status, body: status == 200 and json.loads(body)["remote_user"] == self.username,
        )

    def stop(self) -> None:
        """Stop nginx, then gunicorn, by pid; wait until both have exited. Idempotent."""
        try:
            # nginx first so that no request reaches a gunicorn that is going away.
            _terminate(self._nginx, signal.SIGTERM)
            _terminate(self._gunicorn, signal.SIGTERM)
        finally:
            if self._private_dir is not None:
                shutil.rmtree(self._private_dir, ignore_errors=True)
                self._private_dir = None

    def __enter__(self) -> HgServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_hg_server(
    workdir: Path,
    *,
    ca: trustme.CA | None = None,
    username: str = "ci-bot",
    password: str | None = None,
    repos: Sequence[str] = ("repo",),
    allow_push: bool | str = True,
    seed: bool = True,
    redirect_to: str | None = None,
    workers: int = 2,
    server_config: str = "",
    plain_http: bool = False,
) -> HgServer:
    """Start hgweb + gunicorn + nginx in ``workdir`` and return once an authenticated request
    has gone through the whole chain.

    allow_push: True lets only ``username`` push (so it proves REMOTE_USER reaches hgweb),
    False lets nobody, a string is written as ``web.allow-push`` verbatim (e.g. ``"*"``).
    seed: give every repository one commit. redirect_to: an origin + path prefix (ending in
    "/") that ``/redirect/<rest>`` (authenticated) and ``/redirect-noauth/<rest>`` 302 to.
    server_config: hgrc text for the server side (e.g. ``"[extensions]\nlargefiles =\n"``).
    plain_http: also serve the same site, with the same Basic auth, over plain HTTP
    (``http_url``), for tests of ``http://`` URLs.
    """
    password = check_site_args(username, password, redirect_to)
    workdir = Path(workdir).resolve()
    logs = workdir / "logs"
    env = _server_env(workdir)
    ca_file, cert_file, key_file, htpasswd_file = write_site_files(workdir, ca, username, password)

    server_hgrc = workdir / "server.hgrc"
    server_hgrc.write_text("[ui]\nusername = hgserver seed <seed@localhost>\n" + server_config)
    hgweb_config = workdir / "hgweb.config"
    push_users = _allow_push_value(allow_push, username)
    hgweb_config.write_text(_hgweb_config(workdir / "repos", push_users))
    (workdir / "hgserver_wsgi.py").write_text(_WSGI_MODULE.format(config=str(hgweb_config)))

    socket_path, private_dir = backend_socket(workdir, "gunicorn.sock")

    server = HgServer(
        url="",
        ca_file=str(ca_file),
        username=username,
        password=password,
        access_log=logs / "access.log",
        workdir=workdir,
        port=0,
        repos_dir=workdir / "repos",
        nginx_error_log=logs / "nginx-error.log",
        gunicorn_error_log=logs / "gunicorn-error.log",
        redirect_to=redirect_to,
        http_url="" if plain_http else None,
        _private_dir=private_dir,
    )
    try:
        server._gunicorn = _spawn_gunicorn(workdir, socket_path, env, workers, server)
        # Create the repositories while gunicorn boots (hgweb rescans on every request).
        for name in repos:
            _init_repo(workdir / "repos" / name, seed=seed, env=env)
        wait_for_unix_socket(server, socket_path, time.monotonic() + START_TIMEOUT)
        start_nginx(
            server,
            lambda: nginx_conf(
                server, socket_path, cert_file, key_file, htpasswd_file, _HGWEB_LOCATION
            ),
        )
    except BaseException:
        server.stop()
        raise
    return server


def check_site_args(username: str, password: str | None, redirect_to: str | None) -> str:
    """Refuse what would break the generated config; the password, made up if None."""
    if ":" in username or not username or any(c.isspace() for c in username):
        raise ValueError(f"unusable Basic auth username: {username!r}")
    if redirect_to is not None and not re.fullmatch(r"https?://[^\s\"';$\\{}]+/", redirect_to):
        raise ValueError("redirect_to must be an http(s) URL ending in '/', without quotes or $")
    return secrets.token_urlsafe(18) if password is None else password


def write_site_files(
    workdir: Path, ca: trustme.CA | None, username: str, password: str
) -> tuple[Path, Path, Path, Path]:
    """The work dir's folders, the CA (new if None) and server certificate for localhost and
    127.0.0.1, and the htpasswd file: (ca_file, cert_file, key_file, htpasswd_file)."""
    for d in (workdir, workdir / "logs", workdir / "nginx-temp", workdir / "repos"):
        d.mkdir(parents=True, exist_ok=True)
    ca = ca or trustme.CA()
    ca_file = workdir / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert_file = workdir / "server-cert.pem"
    key_file = workdir / "server-key.pem"
    cert_file.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    _write_private(key_file, cert.private_key_pem.bytes())
    htpasswd_file = workdir / "htpasswd"
    _write_private(htpasswd_file, _htpasswd_line(username, password))
    return ca_file, cert_file, key_file, htpasswd_file


def backend_socket(workdir: Path, name: str) -> tuple[Path, Path | None]:
    """Where the backend behind nginx listens, and the private directory made for it (to
    remove at stop) when the work dir's path is too long for AF_UNIX."""
    socket_path = workdir / name
    if len(str(socket_path)) <= MAX_UNIX_PATH:
        return socket_path, None
    private_dir = Path(tempfile.mkdtemp(prefix="hgsrv-"))
    return private_dir / name, private_dir


# -- generated files ---------------------------------------------------------------------------

_WSGI_MODULE = '''\
"""Generated by tests/hgserver.py: hgwebdir, plus the trusted user header from nginx."""
import json

from mercurial.hgweb.hgwebdir_mod import hgwebdir

_hgweb = hgwebdir({config!r}.encode())


def application(environ, start_response):
    # nginx always sets X-Remote-User to the user it authenticated (replacing any client copy);
    # nothing but nginx can reach this socket. Anything else claiming a user is dropped.
    environ.pop("REMOTE_USER", None)
    user = environ.pop("HTTP_X_REMOTE_USER", "")
    if user:
        environ["REMOTE_USER"] = user
    if environ.get("PATH_INFO") == {whoami!r}:
        body = json.dumps({{
            "remote_user": environ.get("REMOTE_USER"),
            "url_scheme": environ.get("wsgi.url_scheme"),
            "host": environ.get("HTTP_HOST"),
        }}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    return _hgweb(environ, start_response)
'''.replace("{whoami!r}", repr(WHOAMI_PATH))


def _hgweb_config(repos_dir: Path, allow_push: str) -> str:
    return (
        "[paths]\n"
        f"/ = {repos_dir}/*\n"
        "[web]\n"
        f"allow-push = {allow_push}\n"
        # TLS ends at nginx; hgweb still sees https through X-Forwarded-Proto.
        "push_ssl = false\n"
        # Rescan on every request: repositories may be added while the server runs.
        "refreshinterval = 0\n"
        "[ui]\n"
        "report_untrusted = false\n"
    )


def _allow_push_value(allow_push: bool | str, username: str) -> str:
    if allow_push is True:
        return username
    if allow_push is False:
        return ""
    return allow_push


_NGINX_CONF = """\
{user_line}worker_processes 1;
daemon off;
master_process on;
pid {workdir}/nginx.pid;
error_log {error_log} info;

events {{
    worker_connections 128;
}}

http {{
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;

    # Never log the Authorization header itself; only whether there was one.
    map $http_authorization $has_auth {{
        "" 0;
        default 1;
    }}
    log_format hgjson escape=json '{{"time":"$time_iso8601","remote_user":"$remote_user",'
        '"has_auth":$has_auth,"method":"$request_method","uri":"$request_uri",'
        '"cmd":"$arg_cmd","status":$status,"bytes":$body_bytes_sent,'
        '"request_time":$request_time,"upstream_status":"$upstream_status",'
        '"host":"$http_host"}}';
    access_log {access_log} hgjson;

    upstream backend {{
        server unix:{socket};
    }}

    server {{
        listen 127.0.0.1:{port} ssl;
{http_listen}
        server_name localhost;
        ssl_certificate {cert};
        ssl_certificate_key {key};

        auth_basic {auth_basic};
        auth_basic_user_file {htpasswd};
        client_max_body_size 0;

{location}{redirects}    }}
}}
"""

# The site of hgweb: a reverse proxy to gunicorn.
_HGWEB_LOCATION = """\
        location / {
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $remote_addr;
            # Replaces any X-Remote-User sent by the client; hgweb's REMOTE_USER comes from it.
            proxy_set_header X-Remote-User $remote_user;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 120s;
        }
"""

_REDIRECTS = """\
        # "return" runs in the rewrite phase, before auth_basic: it would redirect without asking
        # for credentials. try_files runs after the access phase, so the 302 needs auth here.
        location ~ ^/redirect/(.*)$ {{
            set $redirect_target "{target}$1$is_args$args";
            try_files /.hgserver-no-such-file @redirect;
        }}
        location @redirect {{
            return 302 $redirect_target;
        }}
        location ~ ^/redirect-noauth/(.*)$ {{
            auth_basic off;
            return 302 "{target}$1$is_args$args";
        }}
"""


def nginx_conf(
    server, socket_path: Path, cert: Path, key: Path, htpasswd: Path, location: str
) -> str:
    """The nginx config of a site: TLS on 127.0.0.1, Basic auth (unless the server has
    ``auth = False``), the JSON access log, ``location`` (nginx text, its upstream is
    ``backend`` on ``socket_path``) and the redirect locations when ``redirect_to`` is set."""
    user_line = ""
    if os.geteuid() == 0:
        # Otherwise the workers drop to "nobody" and cannot read the work dir or the socket.
        user = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        user_line = f"user {user} {group};\n"
    http_listen = ""
    if server.http_url is not None:
        http_listen = f"        listen 127.0.0.1:{server.http_url.rsplit(':', 1)[1].rstrip('/')};\n"
    redirects = ""
    if server.redirect_to is not None:
        redirects = _REDIRECTS.format(target=server.redirect_to)
    return _NGINX_CONF.format(
        user_line=user_line,
        workdir=server.workdir,
        error_log=server.nginx_error_log,
        temp=server.workdir / "nginx-temp",
        access_log=server.access_log,
        socket=socket_path,
        port=server.port,
        cert=cert,
        key=key,
        auth_basic=f'"{REALM}"' if getattr(server, "auth", True) else "off",
        htpasswd=htpasswd,
        location=location,
        redirects=redirects,
        http_listen=http_listen,
    )


def _htpasswd_line(username: str, password: str) -> bytes:
    # -i: password on stdin, never in argv. -m: apr1, which nginx verifies itself (no libc crypt).
    try:
        proc = subprocess.run(
            [HTPASSWD, "-n", "-i", "-m", username],
            input=password.encode(),
            capture_output=True,
            timeout=30,
        )
    except FileNotFoundError:
        raise HgServerError(f"{HTPASSWD} not found (Debian package apache2-utils)") from None
    if proc.returncode != 0:
        raise HgServerError("htpasswd failed: " + proc.stderr.decode(errors="replace"))
    line = proc.stdout.strip() + b"\n"
    if line.count(b"\n") != 1 or not line.startswith(username.encode() + b":"):
        raise HgServerError("unexpected htpasswd output")
    return line


# -- processes ---------------------------------------------------------------------------------


def _server_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HG")}
    env.update(
        HGRCPATH=str(workdir / "server.hgrc"),
        HGENCODING="utf-8",
        HGPLAIN="1",
        HOME=str(workdir),
        LC_ALL="C",
    )
    return env


def _init_repo(path: Path, *, seed: bool, env: dict[str, str]) -> None:
    _run_hg(["init", str(path)], env)
    if seed:
        (path / "README").write_text("seeded by tests/hgserver.py\n")
        _run_hg(["-R", str(path), "commit", "-A", "-q", "-m", "seed"], env)


def _run_hg(args: list[str], env: dict[str, str]) -> None:
    proc = subprocess.run(
        [HG, *args], env=env, stdin=subprocess.DEVNULL, capture_output=True, timeout=60
    )
    if proc.returncode != 0:
        raise HgServerError(f"hg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")


def _spawn_gunicorn(
    workdir: Path, socket_path: Path, env: dict[str, str], workers: int, server: HgServer
) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "gunicorn",
        "--bind", f"unix:{socket_path}",
        "--umask", "0o077",
        "--workers", str(workers),
        "--worker-class", "sync",
        "--timeout", "120",
        "--graceful-timeout", "5",
        # gunicorn >= 23 would otherwise open a control socket under $HOME/.gunicorn.
        "--no-control-socket",
        "--chdir", str(workdir),
        "--pythonpath", str(workdir),
        "--pid", str(workdir / "gunicorn.pid"),
        "--error-logfile", str(server.gunicorn_error_log),
        "--log-level", "info",
        "hgserver_wsgi:application",
    ]  # fmt: skip
    with open(server.gunicorn_error_log, "ab") as log:
        return subprocess.Popen(
            cmd,
            env=env,
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_unix_socket(server, path: Path, deadline: float) -> None:
    while True:
        _check_alive(server)
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
            try:
                sock.connect(str(path))
                return
            except (FileNotFoundError, ConnectionRefusedError):
                pass
        if time.monotonic() > deadline:
            name = server.backends()[0][0]
            raise HgServerError(f"{name} did not listen in time" + _log_tails(server))
        time.sleep(0.02)


def start_nginx(server, render: Callable[[], str]) -> None:
    """Start nginx for ``server`` (an HgServer or a site with the same fields and methods) on
    a free port, with the config ``render()`` gives for it; return once the site answers."""
    conf = server.workdir / "nginx.conf"
    for attempt in range(PORT_ATTEMPTS):
        server.port = _free_port()
        server.url = f"https://localhost:{server.port}/"
        if server.http_url is not None:
            server.http_url = f"http://localhost:{_free_port()}/"
        conf.write_text(render())
        log_start = server.nginx_error_log.stat().st_size if server.nginx_error_log.exists() else 0
        with open(server.workdir / "logs" / "nginx-stderr.log", "ab") as out:
            server._nginx = subprocess.Popen(
                [NGINX, "-c", conf, "-p", server.workdir, "-e", server.nginx_error_log],
                cwd=server.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            _wait_until_serving(server, time.monotonic() + START_TIMEOUT, log_start)
            return
        except _PortInUse:
            _terminate(server._nginx, signal.SIGTERM)
            if attempt + 1 == PORT_ATTEMPTS:
                raise HgServerError("no free port found for nginx" + _log_tails(server)) from None
        except BaseException:
            _terminate(server._nginx, signal.SIGTERM)
            raise


class _PortInUse(HgServerError):
    """Another process took the port between _free_port() and nginx's bind()."""


def _wait_until_serving(server, deadline: float, log_start: int) -> None:
    """Poll until an authenticated HTTPS request travels nginx -> backend -> app and back."""
    context = server.ssl_context()
    probe_path, is_ready = server.ready_probe()
    last_error: object = None
    while True:
        # nginx keeps retrying bind() for ~2.5 s before it exits; give up on the port at once.
        if _nginx_log_since(server, log_start).find(b"Address already in use") >= 0:
            raise _PortInUse(server.port)
        _check_alive(server)
        # nginx writes its pid file only once it has bound its port: until then, whoever else
        # may own the port must not be talked to.
        if not _nginx_has_bound(server):
            if time.monotonic() > deadline:
                raise HgServerError("nginx did not bind in time" + _log_tails(server))
            time.sleep(0.01)
            continue
        conn = http.client.HTTPSConnection("localhost", server.port, context=context, timeout=5)
        try:
            conn.request("GET", probe_path, headers={"Authorization": server.basic_auth_header()})
            resp = conn.getresponse()
            body = resp.read()
            if is_ready(resp.status, body):
                _wait_for_logged(server, probe_path, deadline)
                return
            last_error = f"HTTP {resp.status}: {body[:200]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last_error = exc
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise HgServerError(f"server not ready: {last_error}" + _log_tails(server))
        time.sleep(0.02)


def _wait_for_logged(server, probe_path: str, deadline: float) -> None:
    """Until the ready probe's access log line exists. nginx writes it after the response, so
    a test that counts the lines right after start could otherwise see the probe's (an
    authenticated request) arrive among its own."""
    while not any(r["uri"] == probe_path and r["status"] == 200 for r in server_requests(server)):
        if time.monotonic() > deadline:
            raise HgServerError("nginx logged no line for the ready probe" + _log_tails(server))
        time.sleep(0.01)


def server_requests(server) -> list[dict[str, Any]]:
    """The JSON lines of an nginx-fronted server's access log (see ``HgServer.requests``)."""
    if not server.access_log.exists():
        return []
    return [json.loads(line) for line in server.access_log.read_text().splitlines() if line.strip()]


def _nginx_has_bound(server) -> bool:
    try:
        return int((server.workdir / "nginx.pid").read_text()) == server.nginx_pid
    except (FileNotFoundError, ValueError):
        return False


def _nginx_log_since(server, offset: int) -> bytes:
    try:
        with open(server.nginx_error_log, "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


def _check_alive(server) -> None:
    for name, proc in [*server.backends(), ("nginx", server._nginx)]:
        if proc is not None and proc.poll() is not None:
            raise HgServerError(f"{name} exited with {proc.returncode}" + _log_tails(server))


def _log_tails(server, lines: int = 20) -> str:
    out = []
    for path in (
        server.nginx_error_log,
        server.workdir / "logs" / "nginx-stderr.log",
        *server.backend_logs(),
    ):
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {path.name} ---\n" + "\n".join(tail))
    return "".join(out)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port and it can be bound again."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _terminate(proc: subprocess.Popen | None, sig: signal.Signals) -> None:
    """Signal one process we started, by pid, and wait for it; SIGKILL its own process group
    (it was started in a new session, so the group is exactly its children) if it hangs."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    # A group id cannot be reused while any member lives, so whatever is left in the group is a
    # descendant of ours (e.g. a worker orphaned by a master that did not wait for it).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=STOP_TIMEOUT)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
