"""output.py, imported directly: how hg vault's subcommands format what the core returns
(states, dates, tags, errors) without computing any state themselves (no hg subprocess)."""

from __future__ import annotations

import json

import pytest
from hgext3rd.keyvault import _native, output
from hgui import make_ui


def test_text_helpers_make_terminal_safe_bytes_and_keep_null():
    assert output.b(None) == b""
    assert output.b("a\x1bb") == b"a?b"
    assert output.b("a\nb") == b"a?b"
    assert output.b("a\nb", keep_newlines=True) == b"a\nb"
    assert output.opt(None) is None
    assert output.opt("x\ny") == b"x\ny"


def test_dates_print_in_utc_and_none_as_never():
    assert output.date(None) == b"never"
    assert output.date(0) == b"1970-01-01 00:00:00 UTC"
    assert output.date(1767225600.9) == b"2026-01-01 00:00:00 UTC"
    assert output.iso(None) is None
    assert output.iso(1767225600) == "2026-01-01T00:00:00Z"


def test_properties_give_the_cores_state_as_is():
    # "not yet valid" is a state only the core computes; output.py passes it through.
    props = {"state": "not yet valid", "readable": False, "version": "v1"}
    found = output.outcome_state(props, _native)
    assert found == output.Outcome("not yet valid", False, props, None)
    ok = output.outcome_state({"state": "expiring soon", "readable": True}, _native)
    assert (ok.state, ok.readable) == ("expiring soon", True)


def refused(kind: type[_native.KeyVaultError], state: str | None) -> _native.KeyVaultError:
    exc = kind("refused")
    exc.state = state
    return exc


@pytest.mark.parametrize(
    ("exc", "state"),
    [
        (refused(_native.ExpiredError, "not yet valid"), "not yet valid"),
        (refused(_native.ExpiredError, "expired"), "expired"),
        (refused(_native.DisabledError, "disabled"), "disabled"),
        (refused(_native.NotFoundError, None), "missing"),
        (refused(_native.ForbiddenError, None), "forbidden"),
        (refused(_native.UnreachableError, None), "error"),
    ],
)
def test_a_failed_read_is_the_refused_state_or_what_failed(exc, state):
    found = output.outcome_state(exc, _native)
    assert found == output.Outcome(state, False, {}, exc)


def test_an_exception_that_is_not_the_cores_is_raised_again():
    with pytest.raises(ZeroDivisionError):
        output.outcome_state(ZeroDivisionError("bug"), _native)


def test_unknown_is_not_readable():
    assert output.UNKNOWN.state == "unknown" and not output.UNKNOWN.readable


def test_user_tags_leave_out_the_ref_tag_and_sort():
    props = {"tags": {"team": "ci", "hg-keyvault-ref": "secret://x", "owner": "o\x1bps"}}
    assert output.user_tags(props) == {b"owner": b"o?ps", b"team": b"ci"}
    assert output.tags_text(props) == b"owner=o?ps, team=ci"
    assert output.tags_text({"tags": None}) == b"-"
    assert output.tags_text({}) == b"-"


def formatted(tmp_path, template: bytes, exc) -> bytes:
    ui = make_ui(tmp_path)
    ui.pushbuffer()
    fm = ui.formatter(b"vault", {b"template": template})
    fm.startitem()
    output.write_error(fm, exc, b"  ")
    fm.end()
    return ui.popbuffer()


def test_write_error_gives_lines_and_data(tmp_path):
    exc = _native.NotFoundError("gone")
    exc.kind, exc.message, exc.hint = "not-found", "secret x does not exist\nin vault v", "set it"
    plain = formatted(tmp_path, b"", exc)
    assert plain == b"  error:    secret x does not exist\nin vault v\n  hint:     set it\n"
    [data] = json.loads(formatted(tmp_path, b"json", exc))
    assert data == {
        "error_kind": "not-found",
        "error": "secret x does not exist\nin vault v",
        "hint": "set it",
    }


def test_write_error_without_an_error_writes_nulls_and_no_line(tmp_path):
    assert formatted(tmp_path, b"", None) == b""
    [data] = json.loads(formatted(tmp_path, b"json", None))
    assert data == {"error_kind": None, "error": None, "hint": None}
