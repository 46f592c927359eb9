"""A warm interpreter that forks ``bulk`` commands for the tests.

    python tests/zygote.py /tmp/t/zygote.sock    # support.start_bulk() starts one per test process

Each ``python -m bulk`` spends about 0.4 s of CPU on starting the interpreter and importing
aiohttp, rich and typer before it does anything, and the suite starts some two hundred of them.
This process pays that once and forks a child per command. The child is still a process of its
own (its pid, signals, exit status, ``kill -9``) and runs the module ``python -m bulk`` runs
(or, asked by a script's ``bulk`` from ``support.warm_bin``, what the installed script runs), with the
test's arguments, environment, working directory, resource limits and pipes.

The command-line layer is kept too, with its command tree built once (typer would build it again
in every child: some 30 ms of CPU each). No part of it reads the environment when it is made but
the two consoles, which each child makes again in place under its own environment, as a new
interpreter would. The library below it reads the environment only when asked.

Protocol, one SOCK_SEQPACKET connection per command: the client sends a JSON request with its
stdin, stdout and stderr descriptors attached; the zygote answers the child's pid, and later its
exit code as ``os.waitstatus_to_exitcode`` gives it (negative: killed by that signal).
"""

from __future__ import annotations

import array
import atexit
import gc
import importlib
import json
import os
import resource
import runpy
import selectors
import signal
import socket
import sys
import traceback

import typer.main
from typer import _click  # typer's own copy of click: the lock installs no other

import bulk.cli  # imports everything the commands need, once
from bulk.cli import common

# What typer and rich import only when a command line is parsed or printed.
for _name in ("typer._adapters", "typer._click.decorators", "pydantic", "zoneinfo", "rich._emoji_codes", "sysconfig"):
    importlib.import_module(_name)

#: bulk's command tree, built once: typer builds it again on every call of the app, some 30 ms of CPU a command
_COMMAND = typer.main.get_command(bulk.cli.app)
_build = typer.main.get_command


def _get_command(app: typer.Typer) -> _click.Command:
    """The tree built above for bulk's app; any other app's, built as typer builds it."""
    return _COMMAND if app is bulk.cli.app else _build(app)


typer.main.get_command = _get_command

_FDS = 3


def _exit_code(code: object) -> int:
    """What the interpreter would exit with for ``SystemExit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _child(request: dict[str, object], fds: list[int], inherited: list[int]) -> None:
    """Become the command: never returns."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for fd in inherited:
        os.close(fd)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    for which, (soft, hard) in request["limits"].items():  # type: ignore[attr-defined]
        resource.setrlimit(int(which), (soft, hard))
    os.chdir(str(request["cwd"]))
    sys.path[0] = os.getcwd()  # as ``python -m`` puts it first
    os.environ.clear()
    os.environ.update(request["env"])  # type: ignore[arg-type]
    for console in (common.out, common.err):  # made again, in place: the commands' modules hold them
        vars(console).update(vars(common._console(stderr=console.stderr)))
    script = request.get("script")
    sys.argv = [str(script or "bulk"), *request["args"]]  # type: ignore[misc]
    code = 0
    try:
        if script:  # what the installed ``bulk`` script does
            from bulk.cli import main as entry

            sys.exit(entry())
        runpy.run_module("bulk", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = _exit_code(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        sys.stderr.flush()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # as the interpreter does: die of the signal
        os.kill(os.getpid(), signal.SIGINT)
    except BaseException:
        traceback.print_exc()
        code = 1
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = code or 120  # what the interpreter exits with when it cannot flush
    os._exit(code)


def main(path: str) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(path)
    listener.listen(64)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    parent = os.getppid()
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    waiting: dict[int, socket.socket] = {}
    gc.freeze()  # what the children share: the collector would otherwise copy every page it walks
    print("ready", flush=True)
    while True:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                message, ancillary, _, _ = conn.recvmsg(1 << 20, socket.CMSG_SPACE(_FDS * 4))
                fds = array.array("i")
                for level, kind, data in ancillary:
                    if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                        fds.frombytes(data[: len(data) - len(data) % 4])
                if not message or len(fds) != _FDS:
                    conn.close()
                    for fd in fds:
                        os.close(fd)
                    continue
                request = json.loads(message)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    inherited = [listener.fileno(), conn.fileno(), wake_r, wake_w]
                    inherited += [c.fileno() for c in waiting.values()]
                    _child(request, list(fds), inherited)
                for fd in fds:
                    os.close(fd)
                conn.send(str(pid).encode())
                waiting[pid] = conn
            else:
                os.read(wake_r, 4096)
        while waiting:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                break
            conn = waiting.pop(pid, None)
            if conn is not None:
                try:
                    conn.send(str(os.waitstatus_to_exitcode(status)).encode())
                except OSError:
                    pass  # the test is gone: nobody waits for this exit code
                conn.close()
        if os.getppid() != parent:
            return  # the test process died: so do we


if __name__ == "__main__":
    main(sys.argv[1])
