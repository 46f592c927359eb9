"""One redactor: known secrets fingerprinted, named secrets masked, URL queries cut, on every path that writes."""

from __future__ import annotations

import errno
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulk.attempts import Caller, CallLog
from bulk.checkpoint import Checkpoint, RowOutcome, RowState
from bulk.client import Failure
from bulk.credentials import fingerprint
from bulk.inputs import BadRow, Row
from bulk.redact import MASK, error_kind, redact, secret_values
from bulk.report import plan_from_checkpoint, write_report

KEY = "CbAuthKey0123456789abcdef"
TOKEN = "CAIS+sts/Token==secret0123"
TO_SIGN = (
    "Specified signature is not matched with our calculation. server string to sign is:"
    "POST&%2F&AccessKeyId%3DLTAItest%26Action%3DSetSnapshotCallbackAuth%26CallbackAuthKey%3DCbAuthKey0123456789abcdef"
    "%26SecurityToken%3DCAIS%252Bsts%252FToken%253D%253Dsecret0123%26SignatureMethod%3DHMAC-SHA1"
)


def test_a_known_secret_becomes_its_fingerprint() -> None:
    assert redact(f"the key {KEY} is too long", secrets=[KEY]) == f"the key {fingerprint(KEY)} is too long"
    assert secret_values({"DomainName": "a.example.com", "CallbackAuthKey": KEY, "SecurityToken": TOKEN}) == (
        KEY, TOKEN)


def test_a_string_to_sign_keeps_no_token_nor_key() -> None:
    shown = redact(TO_SIGN)
    assert "CAIS" not in shown and "Token" not in shown.replace("SecurityToken", "") and KEY not in shown
    assert f"SecurityToken%3D{MASK}%26SignatureMethod%3DHMAC-SHA1" in shown
    assert f"CallbackAuthKey%3D{MASK}%26SecurityToken" in shown
    assert shown.startswith("Specified signature is not matched with our calculation. server string to sign is:POST&")


@pytest.mark.parametrize("text", [
    f"NotifyAuthKey={KEY}&DomainName=a.example.com",
    f'{{"CallbackAuthKey": "{KEY}", "DomainName": "a.example.com"}}',
    f"callbackauthkey%253D{KEY}%2526DomainName",
])
def test_a_named_secret_is_masked_whatever_its_value(text: str) -> None:
    shown = redact(text)
    assert KEY not in shown and MASK in shown and "DomainName" in shown


def test_a_url_loses_its_query() -> None:
    text = f"400, message='Invalid header', url='http://127.0.0.1:8080/?Action=X&Key={KEY}&DomainName=a.example.com'"
    assert redact(text) == f"400, message='Invalid header', url='http://127.0.0.1:8080/?{MASK}'"


@given(st.text())
def test_redacting_twice_changes_nothing(text: str) -> None:
    once = redact(text, secrets=[KEY])
    assert redact(once, secrets=[KEY]) == once


def test_a_fingerprint_after_a_name_is_kept() -> None:
    text = f"NotifyAuthKey={fingerprint(KEY)} differs"
    assert redact(text) == text


def test_an_exception_is_told_by_its_type_never_its_text() -> None:
    assert error_kind(ValueError(f"http://h/?CallbackAuthKey={KEY}")) == "ValueError"
    reset = ConnectionResetError(errno.ECONNRESET, KEY)
    assert error_kind(reset) == "ConnectionResetError (ECONNRESET: Connection reset by peer)"


def test_the_checkpoint_report_plan_and_log_keep_redacted_messages(tmp_path: Path) -> None:
    """Messages built anywhere reach the checkpoint, report, plan and log file through the redactor."""
    leaky = f"echo of url http://live.example.com/?CallbackAuthKey={KEY} and {TO_SIGN}"
    with Checkpoint.open(tmp_path / "c.ckpt") as ckpt:
        ckpt.set_meta({"action": "SetSnapshotCallbackAuth", "input_path": str(tmp_path / "d.csv"), "input_sha256": "",
                       "created": 0.0, "format": "csv"})
        ckpt.add_rows([Row(2, "a.example.com", {"DomainName": "a.example.com"}, {}), BadRow(3, leaky)])
        ckpt.record(RowOutcome(RowState.FAILED, code="X", message=leaky, line=2, attempts=1))
        ckpt.flush()
        stored = [r["message"] for r in ckpt.rows()]
        write_report(ckpt, tmp_path / "report.csv")
        plan_from_checkpoint(ckpt, tmp_path / "plan.jsonl")
    assert len(stored) == 2 and all(MASK in m for m in stored)
    log = CallLog(tmp_path / "calls.log")
    Caller._write_log(_LogOnly(log), 2, "a.example.com", "SetSnapshotCallbackAuth", 1,  # type: ignore[arg-type]
                      Failure("X", leaky, 400, None, False, 0.1))
    log.close()
    for name in ("c.ckpt", "c.ckpt-wal", "report.csv", "plan.jsonl", "calls.log"):
        path = tmp_path / name
        if path.exists():
            data = path.read_bytes()
            assert KEY.encode() not in data and b"CAIS" not in data, name
    assert orjson.loads((tmp_path / "calls.log").read_bytes())["message"].count(MASK) >= 2


class _LogOnly:
    """What Caller._write_log uses of a caller."""

    def __init__(self, log: CallLog) -> None:
        self._log = log
