"""Every `--json` output parses and holds the keys docs/json.md documents for it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import bulk, fleet, fleet_csv

from bulk.paths import plan_run_checkpoint
from bulk.sim import SimConfig, Simulator

DOC = Path(__file__).parent.parent / "docs" / "json.md"


def documented(command: str) -> tuple[set[str], set[str]]:
    """The keys the section of ``command`` lists: (always there, there only sometimes)."""
    section = DOC.read_text().split(f"## `bulk {command} ")[1].split("\n## ")[0]
    rows = re.findall(r"^\| `([a-z_.]+)` \| [^|]+ \| ([^|]+) \|$", section, re.MULTILINE)
    assert rows, f"no keys documented for {command}"
    return {k for k, meaning in rows if not meaning.startswith("only")}, {k for k, _ in rows}


def check(command: str, document: dict[str, Any]) -> None:
    required, known = documented(command)
    top = {k for k in required if "." not in k}
    assert top <= document.keys(), f"{command}: missing {top - document.keys()}"
    assert document.keys() <= {k.split(".")[0] for k in known}, f"{command}: undocumented {document.keys()}"
    for key in required - top:
        parent, child = key.split(".")
        if document[parent] is not None:
            assert child in document[parent], f"{command}: missing {key}"


async def test_status_plan_and_verify_print_their_documented_shapes(tmp_path: Path) -> None:
    src = fleet_csv(tmp_path / "fleet.csv")
    plan = tmp_path / "fleet.plan.jsonl"
    config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200, missing_domains=("*.missing.example.com",))
    async with Simulator(config) as sim:
        fleet(sim)
        code, out, err = await bulk("plan", str(src), "--action", "AddLiveSnapshotNotifyConfig", "-o", str(plan),
                                    "--endpoint", sim.url, "--json")
        assert code == 0, err
        shown = orjson.loads(out)
        check("plan", shown)
        assert shown["rows"] == {"create": 1, "update": 2, "noop": 1, "conflict": 1, "invalid": 1}
        assert shown["apply"] == f"bulk run --plan {plan}"
        code, _, err = await bulk("run", "--plan", str(plan), "--endpoint", sim.url, "--quiet")
        assert code == 1, err
        ckpt = plan_run_checkpoint(plan)
        sim.notify_configs["url.example.com"]["NotifyUrl"] = "https://hand-edited.example.com/x"
        code, out, err = await bulk("verify", str(ckpt), "--endpoint", sim.url, "--json")
        assert code == 1, err
        shown = orjson.loads(out)
        check("verify", shown)
        assert [(d["domain"], d["code"]) for d in shown["drifted"]] == [("url.example.com", "Drift")]
        assert shown["exit_code"] == 1 and shown["complete"] is True
    code, out, err = await bulk("status", str(ckpt), "--json")
    assert code == 0, err
    shown = orjson.loads(out)
    check("status", shown)
    assert shown["last_run"]["exit_code"] == 1 and shown["running"] is False
