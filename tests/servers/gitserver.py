"""A real authenticated git smart-HTTP server for tests: ``git http-backend`` behind nginx.

The same nginx site as the hg server's (tests/hgserver.py: TLS on 127.0.0.1 with a trustme
certificate, Basic auth from an htpasswd file, the JSON access log, the redirect locations),
with FastCGI in place of the reverse proxy: Debian's fcgiwrap, on a private unix socket, runs
git http-backend for each request, the way Gitea-less git hosting and many CI mirrors do.

git http-backend enables pushes (receive-pack) for any request that carries ``REMOTE_USER``,
which nginx sets to the user it authenticated. nginx hands every request header to the CGI as
``HTTP_*`` unless told otherwise: the Authorization header is blanked, so the password never
sits in the environment of git http-backend (or in its logs).

``auth=False`` serves the same kind of site without any authentication: "another origin" that
answers for real, for tests of where a client sends its credentials after a redirect.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
from hgserver import (
    START_TIMEOUT,
    HgServer,
    _terminate,
    backend_socket,
    check_site_args,
    nginx_conf,
    start_nginx,
    wait_for_unix_socket,
    write_site_files,
)

FCGIWRAP = "/usr/sbin/fcgiwrap"
GIT = "git"
GIT_HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
SEED_MESSAGE = "seeded by tests/servers/gitserver.py"
# redirect_to for redirects to this same origin (scheme, host and port), by nginx variables: the
# port is not known before nginx has bound it.
SAME_ORIGIN = "https://$http_host/"

# Every request goes to git http-backend (it answers 404 for what is not a repository).
_GIT_LOCATION = """\
        location / {
            fastcgi_pass backend;
            include /etc/nginx/fastcgi_params;
            fastcgi_param SCRIPT_FILENAME {backend};
            fastcgi_param PATH_INFO $uri;
            fastcgi_param GIT_PROJECT_ROOT {repos};
            fastcgi_param GIT_HTTP_EXPORT_ALL "";
            fastcgi_param REMOTE_USER $remote_user;
            # nginx would pass the request's Authorization header on as HTTP_AUTHORIZATION.
            fastcgi_param HTTP_AUTHORIZATION "";
            fastcgi_buffering off;
            fastcgi_request_buffering off;
            fastcgi_read_timeout 120s;
        }
"""


@dataclass
class GitServer:
    url: str  # https://localhost:PORT/ ; repositories are url + name (e.g. "repo.git")
    ca_file: str
    username: str
    password: str = field(repr=False)
    access_log: Path  # the same JSON lines as HgServer.requests()
    workdir: Path
    port: int
    repos_dir: Path
    nginx_error_log: Path
    backend_log: Path  # fcgiwrap's and git http-backend's stderr
    auth: bool = True
    redirect_to: str | None = None
    http_url: str | None = None  # (no plain-HTTP listener; start_nginx reads it)
    _nginx: subprocess.Popen | None = field(default=None, repr=False)
    _fcgiwrap: subprocess.Popen | None = field(default=None, repr=False)
    _private_dir: Path | None = field(default=None, repr=False)

    @property
    def nginx_pid(self) -> int | None:
        return self._nginx.pid if self._nginx else None

    def repo_url(self, name: str = "repo.git") -> str:
        return self.url + name

    def repo_path(self, name: str = "repo.git") -> Path:
        return self.repos_dir / name

    redirect_url = HgServer.redirect_url
    requests = HgServer.requests
    ssl_context = HgServer.ssl_context

    def basic_auth_header(self) -> str:
        return "Basic " + b64encode(f"{self.username}:{self.password}".encode()).decode()

    def add_repo(self, name: str, *, seed: bool = True) -> str:
        """A bare repository ``name`` (e.g. ``team/repo.git``) on branch main."""
        _init_bare(self.repos_dir / name, seed=seed, workdir=self.workdir)
        return self.repo_url(name)

    def git(self, name: str, *args: str) -> str:
        """Run git on the bare repository ``name`` as the server's owner; its stdout."""
        return _git(["--git-dir", str(self.repo_path(name)), *args], self.workdir)

    def backends(self) -> list[tuple[str, subprocess.Popen | None]]:
        return [("fcgiwrap", self._fcgiwrap)]

    def backend_logs(self) -> list[Path]:
        return [self.backend_log]

    def ready_probe(self) -> tuple[str, Callable[[int, bytes], bool]]:
        # The smart-HTTP discovery of the seeded repository: nginx, fcgiwrap and git answer.
        path = "/repo.git/info/refs?service=git-upload-pack"
        return path, lambda status, body: status == 200 and b"refs/heads/main" in body

    def stop(self) -> None:
        try:
            _terminate(self._nginx, signal.SIGTERM)
            _terminate(self._fcgiwrap, signal.SIGTERM)
        finally:
            if self._private_dir is not None:
                shutil.rmtree(self._private_dir, ignore_errors=True)
                self._private_dir = None


def start_git_server(
    workdir: Path,
    *,
    ca: trustme.CA | None = None,
    username: str = "ci-bot",
    password: str | None = None,
    repos: tuple[str, ...] = ("repo.git",),
    auth: bool = True,
    redirect_to: str | None = None,
    cgi_wrapper: list[str] | None = None,
) -> GitServer:
    """Start fcgiwrap + nginx in ``workdir`` with seeded bare ``repos`` (``repo.git`` always);
    return once an authenticated discovery request has been answered. ``cgi_wrapper``: a command
    that fcgiwrap runs instead, with git http-backend's path appended (e.g. a process tap that
    execs it)."""
    password = check_site_args(
        username, password, None if redirect_to == SAME_ORIGIN else redirect_to
    )
    workdir = Path(workdir).resolve()
    ca_file, cert, key, htpasswd = write_site_files(workdir, ca, username, password)
    socket_path, private_dir = backend_socket(workdir, "fcgiwrap.sock")
    server = GitServer(
        url="",
        ca_file=str(ca_file),
        username=username,
        password=password,
        access_log=workdir / "logs" / "access.log",
        workdir=workdir,
        port=0,
        repos_dir=workdir / "repos",
        nginx_error_log=workdir / "logs" / "nginx-error.log",
        backend_log=workdir / "logs" / "fcgiwrap.log",
        auth=auth,
        redirect_to=redirect_to,
        _private_dir=private_dir,
    )
    try:
        with open(server.backend_log, "ab") as log:
            server._fcgiwrap = subprocess.Popen(
                # -c 2: two workers, so that a push's parallel requests do not queue.
                [FCGIWRAP, "-c", "2", "-s", f"unix:{socket_path}"],
                env=_git_env(workdir),
                cwd=workdir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        for name in ("repo.git", *repos):
            if not (server.repos_dir / name).exists():
                server.add_repo(name)
        wait_for_unix_socket(server, socket_path, time.monotonic() + START_TIMEOUT)
        backend = GIT_HTTP_BACKEND
        if cgi_wrapper:
            # fcgiwrap runs one file, without arguments.
            script = workdir / "git-http-backend.sh"
            script.write_text("#!/bin/sh\nexec " + shlex.join([*cgi_wrapper, backend]) + "\n")
            script.chmod(0o755)
            backend = str(script)
        location = _GIT_LOCATION.replace("{repos}", str(server.repos_dir))
        location = location.replace("{backend}", backend)
        start_nginx(server, lambda: nginx_conf(server, socket_path, cert, key, htpasswd, location))
    except BaseException:
        server.stop()
        raise
    return server


def _git_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "HG"))}
    env.update(
        HOME=str(workdir),
        LC_ALL="C",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="gitserver seed",
        GIT_AUTHOR_EMAIL="seed@localhost",
        GIT_COMMITTER_NAME="gitserver seed",
        GIT_COMMITTER_EMAIL="seed@localhost",
    )
    return env


def _git(args: list[str], workdir: Path, *, check: bool = True, **kwargs: Any) -> str:
    proc = subprocess.run(
        [GIT, *args],
        env=_git_env(workdir),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def _init_bare(path: Path, *, seed: bool, workdir: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    _git(["init", "-q", "--bare", "--initial-branch=main", str(path)], workdir)
    if seed:
        commit_to(path, "README", "seeded\n", SEED_MESSAGE, workdir)


def commit_to(bare: Path, filename: str, text: str, message: str, workdir: Path) -> str:
    """A commit on main of the bare repository, pushed from a scratch clone as another
    developer's push would land; its hash."""
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        work = Path(scratch) / "work"
        _git(["init", "-q", "--initial-branch=main", str(work)], workdir)
        git = ["-C", str(work)]
        # (An empty repository has no main to fetch yet.)
        _git([*git, "fetch", "-q", str(bare), "main"], workdir, check=False)
        if _git([*git, "rev-parse", "-q", "--verify", "FETCH_HEAD"], workdir, check=False):
            _git([*git, "reset", "-q", "--hard", "FETCH_HEAD"], workdir)
        (work / filename).write_text(text)
        _git([*git, "add", filename], workdir)
        _git([*git, "commit", "-q", "-m", message], workdir)
        _git([*git, "push", "-q", str(bare), "main"], workdir)
        return _git([*git, "rev-parse", "HEAD"], workdir).strip()
