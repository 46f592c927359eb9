"""Shared pieces of the benchmarks: a simulator in its own process, inputs, the machine."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AK_ID, AK_SECRET = "LTAIbenchAccessKey", "benchSecret-not-a-real-key"
ENV = {
    **os.environ,
    "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    "ALIBABA_CLOUD_ACCESS_KEY_ID": AK_ID,
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": AK_SECRET,
}
BULK = [sys.executable, "-m", "bulk"]


@contextmanager
def simulator(*args: str) -> Iterator[str]:
    """``bulk sim serve`` on a free loopback port, in its own process; yields its URL."""
    proc = subprocess.Popen(
        [*BULK, "sim", "serve", "--port", "0", "--access-key-id", AK_ID, "--access-key-secret", AK_SECRET, *args],
        env=ENV, cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().strip().split()[-1]
    try:
        if not url.startswith("http://127.0.0.1:"):
            raise SystemExit(f"simulator did not start: {url!r}")
        yield url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)


def sim_stats(url: str) -> dict:
    with urllib.request.urlopen(f"{url}/_sim/stats", timeout=10) as response:
        return json.load(response)


def domains_csv(path: Path, n: int, *, prefix: str = "d") -> Path:
    with path.open("w") as f:
        f.write("DomainName\n")
        for i in range(n):
            f.write(f"{prefix}{i:07d}.example.com\n")
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
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()} {platform.release()}"
