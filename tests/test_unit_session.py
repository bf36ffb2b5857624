"""session.py, imported directly: the one read path of every kind of value (cache per
process, audit line, forget) against a real store, the kernel keyring (keyutils), and how
core errors become Mercurial aborts (no hg subprocess)."""

from __future__ import annotations

import json
import secrets

import kernel_keys
import pytest
from hgext3rd.keyvault import _native, config, session
from hgui import make_ui
from mercurial import error


def test_core_errors_become_aborts_with_context_and_hint():
    exc = _native.NotFoundError("gone")
    exc.message, exc.hint = "secret x does not exist \x1b[31m", "hg vault set x"
    abort = session.abort_for(exc, "[auth] corp")
    assert type(abort) is error.Abort
    assert abort.message == b"[auth] corp: secret x does not exist ?[31m"
    assert abort.hint == b"hg vault set x"
    bad = _native.BadRefError("bad")
    bad.message, bad.hint = "not a ref", None
    config_error = session.abort_for(bad)
    assert isinstance(config_error, error.ConfigError)
    assert (config_error.message, config_error.hint) == (b"not a ref", None)


@pytest.fixture
def keyring(tmp_path):
    """A ui on the keyutils keyring under a name prefix of its own, with an audit log, and a
    client to play the operator; every key it made is removed afterwards."""
    if not kernel_keys.available():
        pytest.skip("needs Linux keyutils")
    prefix = f"u{secrets.token_hex(4)}-"
    log = tmp_path / "audit.jsonl"
    ui = make_ui(
        tmp_path,
        f"[keyvault]\nprovider = keyring\nkeyring = keyutils\nname-prefix = {prefix}\n"
        f"audit-log = {log}\n",
    )
    operator = _native.Vault.keyring(keyring="keyutils", name_prefix=prefix)
    made: list[str] = []
    session.forget_values()
    yield ui, operator, made, log
    session.forget_values()
    for ref in made:
        operator.delete(ref)


def audit_lines(log) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_one_read_per_process_one_audit_line_and_forget_reads_again(keyring):
    ui, operator, made, log = keyring
    ref = f"secret://unit/{secrets.token_hex(4)}"
    made.append(ref)
    operator.set(ref, b"first")
    group = config.VaultGroup("box", "ssh://h/", ("ssh",), None, ref)

    fetched = session.read(ui, ref, use="ssh", context="[auth] box", group=group)
    assert (fetched.value, fetched.context, fetched.group) == (b"first", "[auth] box", group)
    assert fetched.source == "vault" and fetched.version
    [line] = audit_lines(log)
    assert (line["action"], line["use"], line["group"], line["ref"]) == (
        "read",
        "ssh",
        "box",
        ref,
    )
    assert line["provider"] == "keyring" and line["version"] == fetched.version

    # Rotated in the store: this process keeps what it read, without reading again...
    operator.set(ref, b"second")
    again = session.read(ui, ref, use="smtp", context="[smtp] vault")
    assert again.value == b"first"
    # ...under the name of its new use.
    assert (again.context, again.group) == ("[smtp] vault", None)
    assert len(audit_lines(log)) == 1

    # A server rejected it: the next read goes to the store, and is recorded.
    session.forget(fetched)
    fresh = session.read(ui, ref, use="smtp", context="[smtp] vault")
    assert fresh.value == b"second" and fresh.version != fetched.version
    assert [e["use"] for e in audit_lines(log)] == ["ssh", "smtp"]


def test_a_failed_read_is_recorded_and_aborts_naming_the_use(keyring):
    ui, _, _, log = keyring
    ref = f"secret://unit/missing/{secrets.token_hex(4)}"
    with pytest.raises(error.Abort) as raised:
        session.read(ui, ref, use="smtp", context="[smtp] vault")
    assert raised.value.message.startswith(b"[smtp] vault: ")
    assert f"hg vault set {ref}".encode() in raised.value.hint
    [line] = audit_lines(log)
    assert (line["use"], line["outcome"], line["ref"]) == ("smtp", "not-found", ref)


def test_only_ascii_text_can_be_an_http_password(keyring):
    ui, operator, made, _ = keyring
    ref = f"secret://unit/binary/{secrets.token_hex(4)}"
    made.append(ref)
    operator.set(ref, b"\xff\xfe")
    fetched = session.read(ui, ref, use="http", context="[auth] corp")
    with pytest.raises(error.Abort) as raised:
        session.password_text(fetched)
    assert raised.value.message == (
        b"[auth] corp: the secret %s is not UTF-8 text, so it cannot be an HTTP password"
        % ref.encode()
    )
    assert raised.value.hint == b"store the password as text with: hg vault set %s" % ref.encode()
    operator.set(ref, "pässword".encode())
    session.forget(fetched)
    with pytest.raises(error.Abort) as raised:
        session.password_text(session.read(ui, ref, use="http", context="[auth] corp"))
    assert raised.value.message == (
        b"[auth] corp: the secret %s is not ASCII, and Mercurial sends only ASCII passwords"
        % ref.encode()
    )
    assert raised.value.hint == b"store an ASCII password with: hg vault set %s" % ref.encode()
    operator.set(ref, b"p@ss:w0rd")
    session.forget_values()
    assert session.password_text(session.read(ui, ref, use="http", context="x")) == "p@ss:w0rd"
