"""Shared pieces of the benchmarks: a simulator in its own process, inputs, the machine.

    with Simulator(qps=30, latency_ms=1500) as sim:
        subprocess.run([*BULK, "run", str(csv), "--endpoint", sim.url, ...], env=ENV)
        print(sim.stats()["max_window"])
"""

from __future__ import annotations

import compileall
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
# Throwaway credentials that only the benchmark's own simulator accepts.
AK_ID, AK_SECRET = "LTAIbenchAccessKey", "benchSecret-not-a-real-key"
ENV = {
    **os.environ,
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
    # The simulator takes its secret from here, so no command line printed below carries it.
    "BULK_SIM_ACCESS_KEY_SECRET": AK_SECRET,
}
ENV.pop("ALIBABA_CLOUD_SECURITY_TOKEN", None)
BULK = [sys.executable, "-m", "bulk"]


def shown(command: list[str]) -> str:
    """A command as one could paste it, with the interpreter path shortened."""
    return shlex.join(["python" if c == sys.executable else c for c in command])


class Simulator:
    """``bulk sim serve`` on a free loopback port, in its own process, stopped with SIGINT."""

    __slots__ = ("_proc", "command", "url")

    def __init__(self, *, qps: float, latency_ms: float = 0, wrap: list[str] | None = None,
                 **options: float | int | str) -> None:
        """``options`` are more ``bulk sim serve`` options: latency_jitter_ms=30 -> --latency-jitter-ms 30.
        ``wrap`` goes before the command (``["taskset", "-c", "1"]``: the simulator on its own core)."""
        more = [arg for name, value in options.items()
                for arg in (f"--{name.replace('_', '-')}", value if isinstance(value, str) else f"{value:g}")]
        self.command = [*(wrap or []), *BULK, "sim", "serve", "--port", "0", "--qps", f"{qps:g}",
                        "--latency-ms", f"{latency_ms:g}", *more, "--access-key-id", AK_ID]
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Self:
        self._proc = subprocess.Popen(self.command, env=ENV, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline().strip()  # "bulk simulator listening on http://127.0.0.1:PORT"
        self.url = line.split()[-1] if line else ""
        if not self.url.startswith("http://127.0.0.1:"):
            self.__exit__()
            raise SystemExit(f"simulator did not start: {line!r}")
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_sim/stats", timeout=10) as response:
            return json.load(response)

    def cpu_seconds(self) -> float:
        """User + system CPU the simulator process has used so far (to show it is not the bottleneck)."""
        assert self._proc is not None
        fields = Path(f"/proc/{self._proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compile_bulk() -> None:
    """Compile bulk's modules to bytecode, as installing a package does.

    bulk is installed editable; with PYTHONDONTWRITEBYTECODE set (as in some
    shells and CI) every timed process would compile them from source again.
    """
    compileall.compile_dir(ROOT / "bulk", quiet=1)


def domains_csv(path: Path, n: int, *, prefix: str = "d") -> Path:
    with path.open("w") as f:
        f.write("DomainName\n")
        f.writelines(f"{prefix}{i:07d}.example.com\n" for i in range(n))
    return path


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
