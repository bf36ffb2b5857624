"""audit.py, imported directly: the User-Agent suffix and the audit line it builds for one
access, from a real Mercurial ui and repository (no hg subprocess)."""

from __future__ import annotations

import json
import os
import pwd
import stat

import pytest
from hgext3rd.keyvault import _native, audit
from hgui import make_ui
from mercurial import error, hg


@pytest.fixture(autouse=True)
def _fresh_capture():
    audit.capture(None, None)
    yield
    audit.capture(None, None)


def test_tokens_keep_only_user_agent_safe_characters():
    assert audit._token("my repo (1);x") == "my_repo__1__x"
    assert audit._token("a" * 60) == "a" * 48
    assert audit._token(None) == "-"
    assert audit._token("") == "-"


def test_user_agent_without_a_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ui = make_ui(tmp_path)
    audit.capture(b"vault", None)
    agent = audit.user_agent(ui, "1.2.3")
    assert agent.startswith("hg-keyvault/1.2.3 mercurial/")
    assert agent.endswith(" (repo=-; node=-; cmd=vault)")


def test_user_agent_names_the_repository_node_and_command(tmp_path, monkeypatch):
    ui = make_ui(tmp_path)
    root = tmp_path / "my repo"
    repo = hg.repository(ui, bytes(root), create=True)
    monkeypatch.chdir(tmp_path)
    audit.capture(b"pull", repo)
    assert audit.describe(ui) == {
        "repo": str(root),
        "repo_name": "my repo",
        "node": "0" * 40,
        "command": "pull",
    }
    assert audit.user_agent(ui, "1").endswith("(repo=my_repo; node=000000000000; cmd=pull)")


def test_the_repository_of_the_working_directory_is_found_without_one_given(tmp_path, monkeypatch):
    ui = make_ui(tmp_path)
    hg.repository(ui, bytes(tmp_path / "work"), create=True)
    (tmp_path / "work" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "work" / "sub")
    audit.capture(b"vault", None)
    assert audit.describe(ui)["repo"] == str(tmp_path / "work")


def test_nothing_is_written_without_an_audit_log(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    audit.record(make_ui(tmp_path), None, action="read", ref="secret://x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hgrc"]


def test_one_line_per_access_with_what_was_read_and_never_a_value(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "audit.jsonl"
    ui = make_ui(tmp_path, f"[keyvault]\naudit-log = {log}\n")
    audit.capture(b"email", None)
    props = {"name": "hg-abc", "version": "v2", "request_id": "rid-1", "source": "vault"}
    audit.record(
        ui, None, action="read", use="smtp", ref="secret://m", name="hg-fallback", props=props
    )
    failure = _native.ForbiddenError("no")
    failure.kind, failure.message, failure.request_id = "forbidden", "may not read", "rid-2"
    audit.record(
        ui, None, action="read", use="ssh", ref="secret://k", group="box", name="hg-k", exc=failure
    )
    first, second = (json.loads(line) for line in log.read_text().splitlines())
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert first["action"] == "read" and first["use"] == "smtp"
    assert (first["ref"], first["name"], first["version"]) == ("secret://m", "hg-abc", "v2")
    assert (first["request_id"], first["outcome"], first["error"]) == ("rid-1", "ok", None)
    assert first["group"] is None and first["command"] == "email"
    assert first["os_user"] == pwd.getpwuid(os.getuid()).pw_name
    assert first["uid"] == os.getuid() and first["pid"] == os.getpid()
    assert first["time"].endswith("Z")
    assert (second["use"], second["group"], second["name"]) == ("ssh", "box", "hg-k")
    assert (second["outcome"], second["error"]) == ("forbidden", "may not read")
    assert second["request_id"] == "rid-2"
    assert second["version"] is None


def test_an_unwritable_audit_log_stops_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    log = tmp_path / "missing" / "audit.jsonl"
    ui = make_ui(tmp_path, f"[keyvault]\naudit-log = {log}\n")
    with pytest.raises(error.Abort) as raised:
        audit.record(ui, None, action="read", ref="secret://x")
    assert raised.value.message.startswith(b"cannot append to the audit log %s: " % bytes(log))
    assert b"unset keyvault.audit-log" in raised.value.hint
