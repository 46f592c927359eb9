"""Helpers that several test modules share; no test module imports another.

    from support import bulk, simulator, run_engine, domains_csv

``bulk``/``start_bulk`` run the real command in a child process of its own, forked by a
warm interpreter (tests/zygote.py) that saves each one the interpreter's start and imports; ``simulator``
and ``run_engine`` drive the engine in-process against a simulator on a free
loopback port; the rest are small waits and inputs.
"""

from __future__ import annotations

import array
import asyncio
import atexit
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from conftest import TEST_AK_ID, TEST_AK_SECRET

from bulk.actions import resolve
from bulk.client import LiveClient
from bulk.credentials import Credentials, StaticCredentials
from bulk.engine import run
from bulk.options import RunOptions, RunResult
from bulk.retry import RetryPolicy
from bulk.sim import SimConfig, Simulator

ADD = "AddLiveSnapshotNotifyConfig"

URL = "https://callback.example.com/snapshots"

FAST_RETRY = dict(base=0.01, throttle_base=0.05, cap=0.2)


@contextlib.asynccontextmanager
async def simulator(**config: object) -> AsyncIterator[Simulator]:
    config.setdefault("qps", 1000)
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, seed=11, **config)) as sim:
        yield sim


def domains_csv(path: Path, n: int, *, extra: list[str] = ()) -> Path:
    path.write_text("DomainName\n" + "".join(f"d{i:04d}.example.com\n" for i in range(n)) + "".join(extra))
    return path


async def run_engine(
    sim: Simulator,
    input_path: Path,
    *,
    action: str = ADD,
    overrides: dict[str, str] | None = None,
    checkpoint: Path | None = None,
    timeout: float = 5.0,
    max_attempts: int = 8,
    signature: str = "v3",
    **options: object,
) -> RunResult:
    opts = RunOptions(
        action=resolve(action),
        input_path=input_path,
        checkpoint_path=checkpoint or input_path.with_suffix(".ckpt"),
        overrides={"NotifyUrl": URL} if overrides is None and action == ADD else (overrides or {}),
        timeout=timeout,
        max_attempts=max_attempts,
        **options,
    )
    creds = StaticCredentials(Credentials(TEST_AK_ID, TEST_AK_SECRET))
    async with LiveClient(credentials=creds, endpoint=sim.url, timeout=timeout, signature=signature) as client:
        return await run(opts, client=client, retry=RetryPolicy(max_attempts=max_attempts, **FAST_RETRY))


class Child:
    """A ``bulk`` command forked by the warm interpreter (tests/zygote.py).

    The part of ``asyncio.subprocess.Process`` the tests use: ``pid``, ``returncode``, the
    ``stdout``/``stderr`` readers, ``wait``, ``communicate``, ``send_signal``, ``terminate``, ``kill``.
    """

    def __init__(self, pid: int, channel: socket.socket, stdout: asyncio.StreamReader,
                 stderr: asyncio.StreamReader) -> None:
        self.pid, self.returncode = pid, None
        self._channel, self.stdout, self.stderr = channel, stdout, stderr

    async def wait(self) -> int:
        if self.returncode is None:
            answer = await asyncio.get_running_loop().sock_recv(self._channel, 64)
            self._channel.close()
            self.returncode = int(answer)
        return self.returncode

    async def communicate(self) -> tuple[bytes, bytes]:
        out, err, _ = await asyncio.gather(self.stdout.read(), self.stderr.read(), self.wait())
        return out, err

    def send_signal(self, sig: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_zygote: tuple[subprocess.Popen[bytes], str] | None = None


def _zygote_socket() -> str:
    """The warm interpreter of this test process, started on first use."""
    global _zygote
    if _zygote is None or _zygote[0].poll() is not None:
        path = os.path.join(tempfile.mkdtemp(prefix="bulk-zygote-"), "sock")
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("zygote.py")), path],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        atexit.register(proc.kill)
        _zygote = (proc, path)
    return _zygote[1]


async def _reader(fd: int) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    if fd < 0:
        reader.feed_eof()
        return reader
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
    return reader


async def start_bulk(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
                     limits: dict[int, tuple[int, int]] | None = None, stderr: int = subprocess.PIPE) -> Child:
    """Start ``bulk ARGS`` as its own process: stdin empty, stdout piped, stderr piped or ``DEVNULL``.

    An environment with its own ``PYTHONPATH`` gets a new interpreter: the warm one's import path is set.
    """
    if env is not None and env.get("PYTHONPATH") != os.environ.get("PYTHONPATH"):
        assert limits is None, "a new interpreter with limits: not needed so far"
        return await asyncio.create_subprocess_exec(  # type: ignore[return-value]
            sys.executable, "-m", "bulk", *args, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=stderr)
    request = {"args": list(args), "env": dict(os.environ if env is None else env), "cwd": str(cwd or os.getcwd()),
               "limits": {str(k): v for k, v in (limits or {}).items()}}
    out_r, out_w = os.pipe()
    if stderr == subprocess.PIPE:
        err_r, err_w = os.pipe()
    else:  # the child writes into the void; its reader is empty
        err_r, err_w = -1, os.open(os.devnull, os.O_WRONLY)
    null = os.open(os.devnull, os.O_RDONLY)
    channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        channel.connect(_zygote_socket())
        channel.sendmsg([json.dumps(request).encode()],
                        [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [null, out_w, err_w]))])
        channel.setblocking(False)
        pid = int(await asyncio.get_running_loop().sock_recv(channel, 64))
    except BaseException:
        channel.close()
        for fd in (out_r, err_r):
            if fd >= 0:
                os.close(fd)
        raise
    finally:
        for fd in (null, out_w, err_w):
            os.close(fd)
    return Child(pid, channel, await _reader(out_r), await _reader(err_r))


_SHIM = """#!{python} -S
# bulk for the shell scripts of the tests: the command forked by the test process's warm interpreter.
import array, json, os, signal, socket, sys
channel = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
channel.connect({socket!r})
request = {{"args": sys.argv[1:], "env": dict(os.environ), "cwd": os.getcwd(), "limits": {{}}, "script": sys.argv[0]}}
channel.sendmsg([json.dumps(request).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [0, 1, 2]))])
pid = int(channel.recv(64))
for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
    signal.signal(sig, lambda number, _: os.kill(pid, number))
code = int(channel.recv(64))
sys.exit(code if code >= 0 else 128 - code)
"""


def warm_bin(directory: Path) -> Path:
    """A folder whose ``bulk`` runs the command as ``start_bulk`` does: put it first on a script's PATH."""
    directory.mkdir(parents=True, exist_ok=True)
    shim = directory / "bulk"
    shim.write_text(_SHIM.format(python=sys.executable, socket=_zygote_socket()))
    shim.chmod(0o700)
    return directory


async def bulk(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
               limits: dict[int, tuple[int, int]] | None = None) -> tuple[int, str, str]:
    """Run ``bulk ARGS`` to its end: (exit code, stdout, stderr)."""
    proc = await start_bulk(*args, env=env, cwd=cwd, limits=limits)
    out, err = await proc.communicate()
    return await proc.wait(), out.decode(), err.decode()


def csv_of(path: Path, n: int) -> Path:
    path.write_text("DomainName\n" + "".join(f"d{i:04d}.example.com\n" for i in range(n)))
    return path


async def wait_for_applied(sim: Simulator, count: int, limit: float = 20.0) -> None:
    for _ in range(int(limit / 0.05)):
        if len(sim.applied) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"only {len(sim.applied)} applied")


async def wait_until(predicate, limit: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(limit / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("timed out")


async def settle(sim: Simulator) -> None:
    """A killed run's requests may still be in flight at the service: let them land."""
    await wait_until(lambda: sim.in_flight == 0)


WRONG_SECRET = "not-the-secret-the-service-holds"
ACCOUNTS_CONFIG = {
    "current": "acct-a",
    "profiles": [
        {"name": "acct-a", "mode": "AK", "access_key_id": "LTAIacctA", "access_key_secret": "secret-a"},
        {"name": "acct-b", "mode": "StsToken", "access_key_id": "STS.acctB", "access_key_secret": "secret-b",
         "sts_token": "token-b"},
        {"name": "acct-c", "mode": "AK", "access_key_id": "LTAIacctC", "access_key_secret": WRONG_SECRET},
    ],
}


# -- the plan tests' fleet ---------------------------------------------------------------------------

NEW_URL = "https://new.cb.example.com/snap"
KEY, OLD_KEY = "NewKey0123456789abcdef", "OldKey0123456789abcdef"


def fleet(sim: Simulator) -> None:
    """Four domains as a plan meets them: the row's config, another URL, another key, and none."""
    def config(domain: str, url: str, key: str) -> None:
        sim.notify_configs[domain] = {"DomainName": domain, "NotifyUrl": url, "NotifyReqAuth": "yes",
                                      "NotifyAuthKey": key}

    config("same.example.com", NEW_URL, KEY)
    config("url.example.com", "https://old.cb.example.com/snap", KEY)
    config("key.example.com", NEW_URL, OLD_KEY)


def fleet_csv(path: Path) -> Path:
    """The plan tests' input: one row per fleet domain, one for a missing domain, one invalid."""
    rows = ["DomainName,NotifyUrl,NotifyReqAuth,NotifyAuthKey"]
    for d in ("new", "same", "url", "key", "gone.missing"):
        rows.append(f"{d}.example.com,{NEW_URL},yes,{KEY}")
    rows.append("bad domain,x,yes,short")
    path.write_text("\n".join(rows) + "\n")
    return path


# -- the rollback tests' fleet -----------------------------------------------------------------------

ROLLBACK_NEW_URL, ROLLBACK_OLD_URL = "https://cb.example.com/new", "https://cb.example.com/old"
KINDS = ("none", "same", "url", "key", "off")


def new_key(i: int) -> str:
    return f"New{i:05d}abcdefghijklmn"


def old_key(i: int) -> str:
    return f"Old{i:05d}abcdefghijklmn"


def notify_fleet(sim: Simulator, path: Path, n: int) -> dict[str, dict[str, str]]:
    """n domains, kinds in turn; the input sets NotifyUrl, auth on, a new key per domain. Returns the seeded state."""
    seeded: dict[str, dict[str, str]] = {}
    lines = ["DomainName,NotifyAuthKey"]
    for i in range(n):
        domain = f"{KINDS[i % 5]}{i:04d}.example.com"
        lines.append(f"{domain},{new_key(i)}")
        config = {"none": None,
                  "same": (ROLLBACK_NEW_URL, "yes", new_key(i)),
                  "url": (ROLLBACK_OLD_URL, "yes", new_key(i)),
                  "key": (ROLLBACK_NEW_URL, "yes", old_key(i)),
                  "off": (ROLLBACK_OLD_URL, "no", "")}[KINDS[i % 5]]
        if config is not None:
            fields = ("DomainName", "NotifyUrl", "NotifyReqAuth", "NotifyAuthKey")
            seeded[domain] = dict(zip(fields, (domain, *config), strict=True))
    path.write_text("\n".join(lines) + "\n")
    sim.notify_configs.update({d: dict(c) for d, c in seeded.items()})
    return seeded


def add_args(src: Path, sim: Simulator, *more: str) -> list[str]:
    return ["run", str(src), "--action", ADD, "--set", f"NotifyUrl={ROLLBACK_NEW_URL}", "--set", "NotifyReqAuth=yes",
            "--if-exists", "update", "--endpoint", sim.url, "--quiet", *more]
