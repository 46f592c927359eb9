"""The CPU a command spends, its orphaned descendants included: what the test suite costs a machine.

    python tests/cpu_time.py .venv/bin/python -m pytest -q -n 4 -m "not realtime and not slow and not e2e"
    # ... the command's own output, then on stderr:
    # cpu: 81.9 s (68.1 user + 13.7 sys), 41.8 s of it by processes their parent never waited for; wall 57.8 s

``time`` (the shell's or /usr/bin/time) counts a child's CPU only once its parent has waited for it. The test
processes' warm interpreters (tests/zygote.py) and the chaos test's forkserver are never waited for: they exit
with their test process and are handed to init, which collects their CPU and that of every command they forked
(from a seventh to half of the suite's, as measured). Here this process is the subreaper
(PR_SET_CHILD_SUBREAPER): orphans are handed to it instead, and it waits for them before it counts. Linux only;
run it with ``PYTHONDONTWRITEBYTECODE`` unset, as ``make test`` does, or every process compiles every module again.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import time

_PR_SET_CHILD_SUBREAPER = 36
_ORPHANS_GRACE_S = 30.0


def main(argv: list[str]) -> int:
    """Run ``argv``, wait for it and for every orphan it left, print the CPU of them all; its exit code."""
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER) failed")
    started = time.monotonic()
    code = subprocess.call(argv)
    wall = time.monotonic() - started
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    deadline = time.monotonic() + _ORPHANS_GRACE_S
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break  # none left
        if pid == 0:
            if time.monotonic() > deadline:
                print(f"cpu: orphans still running after {_ORPHANS_GRACE_S:.0f} s: not counted", file=sys.stderr)
                break
            time.sleep(0.05)
    every = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = every.ru_utime + every.ru_stime
    orphaned = total - waited.ru_utime - waited.ru_stime
    print(f"cpu: {total:.1f} s ({every.ru_utime:.1f} user + {every.ru_stime:.1f} sys), {orphaned:.1f} s of it by "
          f"processes their parent never waited for; wall {wall:.1f} s", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
