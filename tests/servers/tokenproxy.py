"""A real identity-aware proxy for tests: Apache httpd 2.4 with mod_auth_openidc as an OAuth 2.0
resource server, validating Microsoft Entra access tokens (the emulator's) in front of hgweb.

What Apache checks, per request: the token's RS256 signature against the tenant's JWKS, fetched
over HTTPS from the emulator (verified with the emulator's CA), by ``kid`` (mod_auth_openidc
refetches the JWKS when it meets an unknown kid); its expiry (``exp``, always checked); and,
through ``Require claim``, its audience, its issuer and, if asked, an app role. The token may
come as ``Authorization: Bearer <token>`` or as the password of HTTP Basic
(``OIDCOAuthAcceptTokenAs header basic``, what Azure DevOps accepts from Git Credential
Manager). ``REMOTE_USER`` is the token's ``oid`` claim (the identity's object id), so
``allow-push`` names object ids.

hgweb is the same gunicorn + WSGI module as tests/hgserver.py's, on a unix socket only Apache's
worker user can reach; Apache sets ``X-Remote-User`` (replacing any client copy), removes the
Authorization header and passes no claims on, so the token never reaches the backend.

Apache runs in the foreground (``-DFOREGROUND``) with its own config, pid file and logs in the
work dir, on 127.0.0.1 and a free port; it is stopped by pid. As root, Apache refuses to serve
as root: its workers run as ``www-data``, which may read only the private directory holding the
socket and the emulator's CA.
"""

from __future__ import annotations

import contextlib
import grp
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from hgserver import (
    _WSGI_MODULE,
    START_TIMEOUT,
    HgServerError,
    _free_port,
    _hgweb_config,
    _init_repo,
    _server_env,
    _spawn_gunicorn,
    _terminate,
    write_site_files,
)

APACHE = shutil.which("apache2") or "/usr/sbin/apache2"
MODULES = Path("/usr/lib/apache2/modules")
WORKER_USER = "www-data"
PORT_ATTEMPTS = 5
_MODULES = [
    ("mpm_event_module", "mod_mpm_event.so"),
    ("authn_core_module", "mod_authn_core.so"),
    ("authz_core_module", "mod_authz_core.so"),
    ("auth_openidc_module", "mod_auth_openidc.so"),
    ("ssl_module", "mod_ssl.so"),
    ("socache_shmcb_module", "mod_socache_shmcb.so"),
    ("proxy_module", "mod_proxy.so"),
    ("proxy_http_module", "mod_proxy_http.so"),
    ("headers_module", "mod_headers.so"),
    ("alias_module", "mod_alias.so"),
    ("setenvif_module", "mod_setenvif.so"),
]

_CONF = """\
ServerRoot "{workdir}"
PidFile "{workdir}/apache.pid"
DefaultRuntimeDir "{private}"
Listen 127.0.0.1:{port}
ServerName localhost
{user_lines}{load_modules}
ErrorLog "{error_log}"
# info: mod_auth_openidc says there why it refused a token.
LogLevel warn auth_openidc:info
# What a test may look at; never the Authorization header (the token).
SetEnvIf Authorization "^Bearer " AUTH_SCHEME=bearer
SetEnvIf Authorization "^Basic " AUTH_SCHEME=basic
# X-Test-Tag: the id a test's own request carries, to find its line (never a secret).
LogFormat "{log_format}" json
CustomLog "{access_log}" json

SSLEngine on
SSLCertificateFile "{cert}"
SSLCertificateKeyFile "{key}"
SSLSessionCache none

OIDCCABundlePath "{emulator_ca}"
OIDCOAuthSSLValidateServer On
OIDCOAuthVerifyJwksUri "{jwks_uri}"
OIDCOAuthRemoteUserClaim oid
OIDCOAuthAcceptTokenAs {accept}
OIDCPassClaimsAs none

<Location />
    AuthType oauth20
{auth_name}    <RequireAll>
        Require claim "aud:{audience}"
        Require claim "iss:{issuer}"
{role_line}    </RequireAll>
    RequestHeader set X-Remote-User "expr=%{{REMOTE_USER}}"
    RequestHeader unset Authorization
    RequestHeader set X-Forwarded-Proto https
</Location>
{redirect}ProxyPass / "unix:{socket}|http://localhost/"
"""


# One JSON object per request (Apache escapes quotes in %u and %U).
_LOG_FORMAT = (
    '{\\"remote_user\\": \\"%u\\", \\"auth_scheme\\": \\"%{AUTH_SCHEME}e\\", '
    '\\"method\\": \\"%m\\", \\"uri\\": \\"%U%q\\", \\"status\\": %>s, '
    '\\"time\\": \\"%{%s}t\\", \\"tag\\": \\"%{X-Test-Tag}i\\"}'
)
TAG_HEADER = "X-Test-Tag"
MARK_PATH = "/.test-mark"


@dataclass
class TokenProxy:
    url: str  # https://localhost:PORT/ ; repositories are url + name
    ca_file: str  # the CA of the proxy's certificate
    audience: str
    issuer: str
    workdir: Path
    repos_dir: Path
    access_log: Path
    error_log: Path
    gunicorn_error_log: Path
    port: int = 0
    _apache: subprocess.Popen | None = field(default=None, repr=False)
    _gunicorn: subprocess.Popen | None = field(default=None, repr=False)
    _private_dir: Path | None = field(default=None, repr=False)
    last_tag: str | None = field(default=None, repr=False)  # of the last get()

    @property
    def apache_pid(self) -> int | None:
        return self._apache.pid if self._apache else None

    def repo_url(self, name: str = "repo") -> str:
        return self.url + name

    def repo_path(self, name: str = "repo") -> Path:
        return self.repos_dir / name

    def requests(self) -> list[dict[str, Any]]:
        """Apache's access log: remote_user, auth_scheme (bearer, basic or "-"), method, uri,
        status, time, tag ("-" unless the request came from ``get``)."""
        if not self.access_log.exists():
            return []
        return [json.loads(x) for x in self.access_log.read_text().splitlines() if x.strip()]

    def logged(self, tag: str) -> tuple[int, dict[str, Any]]:
        """(index, entry) of the access log line of the request that carried ``tag``. Apache
        writes a line once the response is sent, in whatever order its threads finish, so a
        client may read the answer before the line exists and counting lines proves nothing:
        wait (bounded) for this very line."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            for index, entry in enumerate(self.requests()):
                if entry.get("tag") == tag:
                    return index, entry
            if time.monotonic() > deadline:
                raise HgServerError(f"Apache logged no request tagged {tag}")
            time.sleep(0.01)

    def last_request(self) -> dict[str, Any]:
        """The access log entry of the last ``get``."""
        assert self.last_tag is not None, "no request made through get() yet"
        return self.logged(self.last_tag)[1]

    def mark(self) -> str:
        """A tagged request of its own (answered 401) that bounds the requests of what a test
        runs next, e.g. an hg command: see ``requests_since``."""
        self.get(MARK_PATH, None)
        assert self.last_tag is not None
        self.logged(self.last_tag)
        return self.last_tag

    def requests_since(self, mark: str) -> list[dict[str, Any]]:
        """The entries logged between ``mark`` and a new mark made now, without marks or other
        tagged requests: what the client under test sent once it has finished. A request
        whose response the client already had is logged before a mark sent after it (the
        mark's TLS handshake and authentication take far longer than writing one line)."""
        end = self.mark()
        start_index, _ = self.logged(mark)
        end_index, _ = self.logged(end)
        between = self.requests()[start_index + 1 : end_index]
        return [e for e in between if e.get("tag") in ("", "-")]

    def error_log_text(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def get(self, path: str, authorization: str | None) -> tuple[int, dict[str, str], bytes]:
        """One HTTPS GET through the proxy: (status, headers, body); tagged (``last_tag``) so
        that ``last_request`` finds its log line."""
        conn = http.client.HTTPSConnection(
            "localhost", self.port, context=self.ssl_context(), timeout=15
        )
        try:
            self.last_tag = uuid.uuid4().hex
            headers = {TAG_HEADER: self.last_tag}
            if authorization:
                headers["Authorization"] = authorization
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        """Apache first (no request reaches a backend going away), then gunicorn; by pid."""
        try:
            _terminate(self._apache, signal.SIGTERM)
            _terminate(self._gunicorn, signal.SIGTERM)
        finally:
            if self._private_dir is not None:
                shutil.rmtree(self._private_dir, ignore_errors=True)
                self._private_dir = None

    def __enter__(self) -> TokenProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_token_proxy(
    workdir: Path,
    *,
    emulator: Any,
    audience: str,
    issuer: str | None = None,
    required_role: str | None = None,
    allow_push: str = "*",
    repos: tuple[str, ...] = ("repo",),
    accept: str = "header basic",
    ca: trustme.CA | None = None,
    redirect_to: str | None = None,
) -> TokenProxy:
    """Start hgweb behind Apache + mod_auth_openidc in ``workdir``; return once Apache answers.

    audience: the ``aud`` Apache requires (an App ID URI for v1 tokens, the client id for v2).
    issuer: the ``iss`` it requires (default: the emulator tenant's v1 issuer).
    required_role: an app role the token's ``roles`` must hold (None: any identity).
    allow_push: hgweb's ``web.allow-push`` (object ids, or ``*``).
    redirect_to: an origin + path prefix (ending in "/") that ``/redirect/<rest>`` answers 302
    to, before any token check (mod_alias acts before authentication).
    """
    workdir = Path(workdir).resolve()
    issuer = issuer or f"https://sts.windows.net/{emulator.tenant_id}/"
    for value in (audience, issuer, required_role or "", allow_push, redirect_to or ""):
        if any(c in value for c in '"\n\\'):
            raise ValueError(f"unusable value for the Apache config: {value!r}")
    env = _server_env(workdir)
    ca_file, cert_file, key_file, _ = write_site_files(workdir, ca, "unused", "unused")
    (workdir / "server.hgrc").write_text("[ui]\nusername = hgserver seed <seed@localhost>\n")
    hgweb_config = workdir / "hgweb.config"
    hgweb_config.write_text(_hgweb_config(workdir / "repos", allow_push))
    (workdir / "hgserver_wsgi.py").write_text(_WSGI_MODULE.format(config=str(hgweb_config)))
    private = Path(tempfile.mkdtemp(prefix="hgtok-"))
    proxy = TokenProxy(
        url="",
        ca_file=str(ca_file),
        audience=audience,
        issuer=issuer,
        workdir=workdir,
        repos_dir=workdir / "repos",
        access_log=workdir / "logs" / "apache-access.log",
        error_log=workdir / "logs" / "apache-error.log",
        gunicorn_error_log=workdir / "logs" / "gunicorn-error.log",
        _private_dir=private,
    )
    try:
        socket_path = private / "gunicorn.sock"
        emulator_ca = private / "emulator-ca.pem"
        shutil.copyfile(emulator.ca_file, emulator_ca)
        proxy._gunicorn = _spawn_gunicorn(workdir, socket_path, env, 2, proxy)  # type: ignore[arg-type]
        for name in repos:
            _init_repo(workdir / "repos" / name, seed=True, env=env)
        _wait_for_socket(proxy, socket_path)
        _share_with_workers(private, [socket_path, emulator_ca])
        jwks_uri = f"{emulator.authority_host}/{emulator.tenant_id}/discovery/v2.0/keys"
        role_line = f'        Require claim "roles:{required_role}"\n' if required_role else ""
        _start_apache(
            proxy,
            lambda port: _CONF.format(
                workdir=workdir,
                private=private,
                port=port,
                user_lines=_user_lines(),
                load_modules="".join(f"LoadModule {m} {MODULES / f}\n" for m, f in _MODULES),
                error_log=proxy.error_log,
                access_log=proxy.access_log,
                cert=cert_file,
                key=key_file,
                emulator_ca=emulator_ca,
                jwks_uri=jwks_uri,
                accept=accept,
                # A realm in the Basic challenge, which urllib (stock hg) needs to answer it at
                # all; only when tokens come as Basic passwords alone (the bench's baseline).
                auth_name='    AuthName "hg"\n' if accept == "basic" else "",
                audience=audience,
                issuer=issuer,
                role_line=role_line,
                socket=socket_path,
                log_format=_LOG_FORMAT,
                redirect=_redirect_lines(redirect_to),
            ),
        )
    except BaseException:
        proxy.stop()
        raise
    return proxy


def _redirect_lines(redirect_to: str | None) -> str:
    if not redirect_to:
        return ""
    return f'ProxyPass /redirect/ !\nRedirectMatch 302 "^/redirect/(.*)$" "{redirect_to}$1"\n'


def _user_lines() -> str:
    # Apache will not serve as root; its workers need only the private dir (see module doc).
    if os.geteuid() != 0:
        return ""
    return f"User {WORKER_USER}\nGroup {WORKER_USER}\n"


def _share_with_workers(private: Path, files: list[Path]) -> None:
    if os.geteuid() != 0:
        return
    gid = grp.getgrnam(WORKER_USER).gr_gid
    os.chown(private, -1, gid)
    private.chmod(0o710)
    for f in files:
        os.chown(f, -1, gid)
        f.chmod(0o660)


def _wait_for_socket(proxy: TokenProxy, path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proxy._gunicorn is not None and proxy._gunicorn.poll() is not None:
            raise HgServerError("gunicorn exited" + _tails(proxy))
        with contextlib.closing(socket.socket(socket.AF_UNIX)) as sock:
            try:
                sock.connect(str(path))
                return
            except (FileNotFoundError, ConnectionRefusedError):
                pass
        if time.monotonic() > deadline:
            raise HgServerError("gunicorn did not listen in time" + _tails(proxy))
        time.sleep(0.02)


def _start_apache(proxy: TokenProxy, render) -> None:
    conf = proxy.workdir / "apache.conf"
    for _ in range(PORT_ATTEMPTS):
        proxy.port = _free_port()
        proxy.url = f"https://localhost:{proxy.port}/"
        conf.write_text(render(proxy.port))
        with open(proxy.workdir / "logs" / "apache-stderr.log", "ab") as out:
            proxy._apache = subprocess.Popen(
                [APACHE, "-f", str(conf), "-DFOREGROUND"],
                cwd=proxy.workdir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C"},
                start_new_session=True,
            )
        try:
            if _wait_until_serving(proxy):
                return
        except BaseException:
            _terminate(proxy._apache, signal.SIGTERM)
            raise
        _terminate(proxy._apache, signal.SIGTERM)  # the port was taken: try another
    raise HgServerError("no free port found for Apache" + _tails(proxy))


def _wait_until_serving(proxy: TokenProxy) -> bool:
    """True once Apache answers a request without a token with mod_auth_openidc's 401; False
    if it could not bind its port (it then exits)."""
    deadline = time.monotonic() + START_TIMEOUT
    last: object = None
    while True:
        assert proxy._apache is not None
        if proxy._apache.poll() is not None:
            if "Address already in use" in _stderr(proxy):
                return False
            raise HgServerError(f"apache exited with {proxy._apache.returncode}" + _tails(proxy))
        # Apache writes its pid file once its port is bound: until then the port may be another's.
        bound = False
        with contextlib.suppress(FileNotFoundError, ValueError):
            bound = int((proxy.workdir / "apache.pid").read_text()) == proxy.apache_pid
        if bound:
            try:
                status, headers, _ = proxy.get("/", None)
                # mod_auth_openidc's challenge: Bearer, or Basic when it takes tokens as Basic
                # passwords only (accept="basic").
                challenge = headers.get("www-authenticate", "")
                if status == 401 and challenge.startswith(("Bearer", "Basic")):
                    return True
                last = f"HTTP {status}"
            except (OSError, http.client.HTTPException) as exc:
                last = exc
        if time.monotonic() > deadline:
            raise HgServerError(f"apache not ready: {last}" + _tails(proxy))
        time.sleep(0.02)


def _stderr(proxy: TokenProxy) -> str:
    path = proxy.workdir / "logs" / "apache-stderr.log"
    return path.read_text(errors="replace") if path.exists() else ""


def _tails(proxy: TokenProxy, lines: int = 20) -> str:
    out = []
    for path in (
        proxy.error_log,
        proxy.workdir / "logs" / "apache-stderr.log",
        proxy.gunicorn_error_log,
    ):
        if path.exists():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {path.name} ---\n" + "\n".join(tail))
    return "".join(out)
