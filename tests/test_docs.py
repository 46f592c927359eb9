"""The docs' commands, executed: every ```sh run block of README.md and docs/*.md, against a live simulator.

    .venv/bin/python -m pytest -q tests/test_docs.py

A shell block whose fence reads ```sh run runs bulk against the simulator; the convention is in docs/testing.md.
Each file's marked blocks run in order in one ``bash`` (``set -euo pipefail``), in a fresh temporary directory
holding a copy of samples/ and serving as $HOME (so ``~/.local/state/bulk`` is the run state the docs name), with
a ``bulk sim serve`` on a free loopback port whose URL and throwaway credentials are exported as
docs/simulator.md tells the user to: ``BULK_ENDPOINT`` and the two ``ALIBABA_CLOUD_ACCESS_KEY_*`` lines it
prints. So a block that drifts from the CLI fails here, naming its file, its first line and its stderr.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import start_bulk, warm_bin

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```sh run[ \t]*$")
MARK = "__bulk_docs_block__"


@dataclass(frozen=True, slots=True)
class Block:
    """One marked block: its file, the line its fence is on, and its body."""

    path: Path
    line: int
    body: str

    @property
    def first(self) -> str:
        """The block's first line, to name it in a failure."""
        return self.body.splitlines()[0] if self.body else ""


def marked_blocks(path: Path) -> list[Block]:
    """Every ```sh run block of ``path``, in order: fences are followed as Markdown does, so a block shown
    inside a longer fence (an example of the convention) is not one. An unclosed marked block is an error."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^(`{3,})", lines[i])
        if opening:
            fence, start = opening.group(1), i
            i += 1
            while i < len(lines) and not re.match(rf"^{fence}`*[ \t]*$", lines[i]):
                i += 1
            if FENCE.match(lines[start]):
                if i == len(lines):
                    raise AssertionError(f"{path.relative_to(ROOT)}:{start + 1}: ```sh run block never closed")
                blocks.append(Block(path, start + 1, "\n".join(lines[start + 1:i])))
        i += 1
    return blocks


def test_only_top_level_sh_run_fences_are_marked(tmp_path: Path) -> None:
    """A marked block is found; plain ones, other languages and a block quoted in a longer fence are not."""
    page = tmp_path / "page.md"
    page.write_text("```sh\nbulk sim serve\n```\n````markdown\n```sh run\nbulk nope\n```\n````\n"
                    "```sh run\nbulk validate x\necho ok\n```\n```sh runner\nno\n```\n")
    assert [(b.line, b.body) for b in marked_blocks(page)] == [(9, "bulk validate x\necho ok")]


def documents() -> list[Path]:
    """README.md and every docs/*.md page."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def script(blocks: list[Block]) -> str:
    """One bash script for a file: each block announced on stderr, so that a failure names its block."""
    parts = ["set -euo pipefail"]
    for n, block in enumerate(blocks):
        parts += [f"echo {MARK}{n} >&2", block.body]
    return "\n".join(parts) + "\n"


def failed_block(blocks: list[Block], stderr: str) -> tuple[Block, str]:
    """The block that was running when the script stopped, and its own stderr."""
    found = re.findall(rf"^{MARK}(\d+)$", stderr, flags=re.M)
    n = int(found[-1]) if found else 0
    return blocks[n], stderr.rsplit(f"{MARK}{n}\n", 1)[-1]


FILES = [p for p in documents() if marked_blocks(p)]


def test_the_readme_quick_start_is_executed() -> None:
    """The collector finds the README's quick start, and it runs the whole journey."""
    assert ROOT / "README.md" in FILES
    text = "\n".join(b.body for b in marked_blocks(ROOT / "README.md"))
    for command in ("bulk validate", "--canary", "bulk run", "bulk verify", "bulk rollback"):
        assert command in text, command


def test_a_failing_block_is_named() -> None:
    """The stderr markers attribute a failure to its block, with that block's stderr only."""
    blocks = [Block(ROOT / "x.md", 1, "true\necho one >&2"), Block(ROOT / "x.md", 9, "bulk nope\nfalse")]
    proc = subprocess.run(["bash", "-c", script(blocks)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    block, err = failed_block(blocks, proc.stderr)
    assert block.line == 9 and block.first == "bulk nope"
    assert "one" not in err


def environment(home: Path) -> dict[str, str]:
    """A new user's environment: the venv's bin first, no metadata service, no state or credentials of ours."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALIBABA_CLOUD_", "BULK_", "XDG_"))}
    env.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
               ALIBABA_CLOUD_ECS_METADATA_DISABLED="true", COLUMNS="120")
    return env


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
async def test_marked_blocks_run(path: Path, tmp_path: Path) -> None:
    """Every marked block of ``path`` runs, in order, to exit 0 against the simulator."""
    blocks = marked_blocks(path)
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    env = environment(tmp_path)
    # The installed script's code, forked warm: twenty new interpreters would cost some 15 s of CPU.
    env["PATH"] = f"{warm_bin(tmp_path / '.bin')}{os.pathsep}{env['PATH']}"
    sim = await start_bulk("sim", "serve", "--port", "0", "--qps", "1000", env=env, cwd=tmp_path)
    try:
        assert sim.stdout is not None
        listening = (await asyncio.wait_for(sim.stdout.readline(), 30)).decode().split()
        env["BULK_ENDPOINT"] = listening[-1]
        for _ in range(2):
            name, _, value = (await asyncio.wait_for(sim.stdout.readline(), 30)).decode().strip() \
                .removeprefix("export ").partition("=")
            env[name] = value
        assert {"ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"} <= env.keys()
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", script(blocks), cwd=tmp_path, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        sim.terminate()
        await sim.communicate()
    if proc.returncode != 0:
        block, stderr = failed_block(blocks, err.decode(errors="replace"))
        pytest.fail(f"{path.relative_to(ROOT)}:{block.line}: the block `{block.first}` exited {proc.returncode}\n"
                    f"stderr:\n{stderr}\nstdout (tail):\n{out.decode(errors='replace')[-2000:]}")
