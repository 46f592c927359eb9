"""Secrets never reach a file or a terminal through an error's text (issue 20, findings 1 and 8), over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
from support import bulk

from bulk.actions import resolve
from bulk.client import LiveClient
from bulk.credentials import Credentials, StaticCredentials
from bulk.paths import default_checkpoint

KEY = "LeakCheckKey0123456789abcdEF"
TOKEN = "CAISstsToken0123456789xyzLEAK"


@asynccontextmanager
async def garbling_service() -> AsyncIterator[tuple[str, list[str]]]:
    """An endpoint that reads a callback auth key as the service would, and answers a Set with a broken head.

    A Query is answered properly (no key set), so that the backup and the read-back go through and the Set is
    sent; a Set gets ``Content-Length: nope``, as a broken proxy might answer. Yields the URL and the request lines.
    """
    seen: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                lines = head.decode("latin-1").split("\r\n")
                seen.append(lines[0])
                length = next((int(v) for k, _, v in (h.partition(":") for h in lines[1:])
                               if k.strip().lower() == "content-length"), 0)
                body = (await reader.readexactly(length)).decode() if length else ""
                query = parse_qs(urlsplit(lines[0].split(" ")[1]).query) | parse_qs(body)
                if "CallbackAuthKey" in query:
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: nope\r\n\r\n{}")
                    await writer.drain()
                    break
                domain = query.get("DomainName", [""])[0]
                answer = orjson.dumps({"RequestId": "R-Q", "DomainName": domain, "CallbackReqAuth": "no",
                                       "CallbackAuthKey": ""})
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                             % (len(answer), answer))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", seen
    finally:
        server.close()
        await server.wait_closed()


async def test_a_garbled_answer_to_a_set_with_a_key_leaks_it_nowhere(tmp_path: Path) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    src = tmp_path / "d.csv"
    # Two Sets whose answers break (unknown: they may still land), and an invalid line for the failures file.
    src.write_text("DomainName\na.example.com\nb.example.com\nnot a domain\n")
    async with garbling_service() as (url, seen):
        code, out, err = await bulk(
            "run", str(src), "--action", "SetSnapshotCallbackAuth", "--set", "CallbackReqAuth=yes",
            "--set", f"CallbackAuthKey=@{tmp_path / 'key'}", "--endpoint", url, "--signature", "v3",
            "--max-attempts", "2", "--timeout", "2", "--quiet",
            "--report", str(tmp_path / "report.csv"), "--log-file", str(tmp_path / "calls.log"), cwd=tmp_path)
        ckpt = default_checkpoint(src, resolve("SetSnapshotCallbackAuth"))
        reported = [await bulk("report", str(ckpt), cwd=tmp_path),
                    await bulk("report", str(ckpt), "--format", "jsonl", "--failed-only", cwd=tmp_path)]
    # The key went out in the query string, and the answer broke: the leak this test is about was possible.
    assert any(f"CallbackAuthKey={KEY}" in line for line in seen), seen
    assert code == 3 and "unknown outcome" in err, err  # no answer of the service's: the Set may still land
    log = [orjson.loads(line) for line in (tmp_path / "calls.log").read_bytes().splitlines()]
    failed = [e for e in log if e["action"] == "SetSnapshotCallbackAuth"]
    assert failed and all(e["code"] == "ConnectionError" and "ClientResponseError" in e["message"] for e in failed)
    report = (tmp_path / "report.csv").read_text()
    assert report.count("ConnectionError") == 2 and "ClientResponseError, HTTP status 400" in report
    shown = [out, err] + [part for r in reported for part in r[1:]]
    assert all(r[0] == 0 for r in reported) and "ClientResponseError" in reported[0][1]
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "key"]  # the state directory too
    assert {"report.csv", "calls.log", ckpt.name} <= {p.name for p in files}
    assert any(p.name.endswith(".failures.csv") for p in files)
    # No exception's text at all (aiohttp's names the URL: "message=..., url=..."), redacted or not.
    for text in shown:
        assert KEY not in text and "CallbackAuthKey=" not in text and "url=" not in text, text
    for path in files:  # the checkpoint (every column, its WAL and backup too), report, log, failures file
        data = path.read_bytes()
        assert KEY.encode() not in data and b"CallbackAuthKey=" not in data and b"url=" not in data, path.name


async def test_a_v1_signature_mismatch_shows_no_sts_token() -> None:
    """The service echoes its string to sign, SecurityToken and keys included: the message masks them."""
    to_sign = (f"POST&%2F&AccessKeyId%3DSTS.test%26Action%3DSetSnapshotCallbackAuth%26CallbackAuthKey%3D{KEY}"
               f"%26SecurityToken%3D{TOKEN}%26SignatureMethod%3DHMAC-SHA1")
    answer = orjson.dumps({"RequestId": "R-S", "Code": "SignatureDoesNotMatch", "Message":
                           "Specified signature is not matched with our calculation. "
                           f"server string to sign is:{to_sign}"})

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
        await reader.readexactly(length)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(answer), answer))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        creds = StaticCredentials(Credentials("STS.test", "stsSecret0123456789", TOKEN))
        async with LiveClient(credentials=creds, endpoint=f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}",
                              signature="v1") as client:
            outcome = await client.call("SetSnapshotCallbackAuth", {"DomainName": "a.example.com",
                                                                    "CallbackReqAuth": "yes", "CallbackAuthKey": KEY})
    finally:
        server.close()
        await server.wait_closed()
    assert not outcome.ok and outcome.code == "SignatureDoesNotMatch"
    assert TOKEN not in outcome.message and KEY not in outcome.message
    assert "SecurityToken%3D******%26SignatureMethod" in outcome.message
