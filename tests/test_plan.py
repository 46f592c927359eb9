"""plan / run --plan / verify against a simulator seeded with a mixed fleet."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from conftest import TEST_AK_ID, TEST_AK_SECRET
from support import KEY, NEW_URL, OLD_KEY, bulk, fleet, fleet_csv

from bulk.paths import plan_run_checkpoint
from bulk.sim import SimConfig, Simulator


async def test_plan_then_apply_then_verify(tmp_path: Path) -> None:
    src = fleet_csv(tmp_path / "fleet.csv")
    plan = tmp_path / "fleet.plan.jsonl"
    sim_config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200,
                           missing_domains=("*.missing.example.com",))
    async with Simulator(sim_config) as sim:
        fleet(sim)
        code, out, err = await bulk("plan", str(src), "--action", "AddLiveSnapshotNotifyConfig", "-o", str(plan),
                                    "--endpoint", sim.url, "--qps", "200")
        assert code == 0, err
        lines = [orjson.loads(line) for line in plan.read_bytes().splitlines()]
        header, entries = lines[0], {e["domain"]: e for e in lines[1:]}
        assert header["action"] == "AddLiveSnapshotNotifyConfig"
        assert {d: e["kind"] for d, e in entries.items()} == {
            "new.example.com": "create", "same.example.com": "noop", "url.example.com": "update",
            "key.example.com": "update", "gone.missing.example.com": "conflict", "bad domain": "invalid",
        }
        assert entries["url.example.com"]["fields"] == ["NotifyUrl"]
        assert entries["key.example.com"]["fields"] == ["NotifyAuthKey"]
        assert entries["url.example.com"]["send"] == "UpdateLiveSnapshotNotifyConfig"
        assert entries["new.example.com"]["send"] == "AddLiveSnapshotNotifyConfig"
        assert "InvalidDomain.NotFound" in entries["gone.missing.example.com"]["reason"]
        assert KEY.encode() not in plan.read_bytes() and OLD_KEY.encode() not in plan.read_bytes()
        assert "create" in out and "conflict" in out

        # Only what the plan says is sent: one Add, two Updates, nothing else (each domain read once first, for
        # the backup and against the plan, the noop one included).
        before = {a: sum(c.values()) for a, c in sim.stats()["calls"].items()}
        code, out, err = await bulk("run", "--plan", str(plan), "--endpoint", sim.url, "--qps", "200", "--quiet")
        after = {a: sum(c.values()) for a, c in sim.stats()["calls"].items()}
        sent = {a: after[a] - before.get(a, 0) for a in after if after[a] != before.get(a, 0)}
        assert sent == {"AddLiveSnapshotNotifyConfig": 1, "UpdateLiveSnapshotNotifyConfig": 2,
                        "DescribeLiveSnapshotNotifyConfig": 4}
        assert code == 1, err  # the conflict and the invalid row are reported
        for d in ("new", "same", "url", "key"):
            config = sim.notify_configs[f"{d}.example.com"]
            assert config["NotifyUrl"] == NEW_URL and config["NotifyAuthKey"] == KEY

        # A change behind bulk's back is found by verify.
        ckpt = plan_run_checkpoint(plan)
        code, out, err = await bulk("verify", str(ckpt), "--endpoint", sim.url, "--qps", "200", "--quiet")
        assert code == 0, out + err
        sim.notify_configs["url.example.com"]["NotifyUrl"] = "https://hand-edited.example.com/x"
        code, out, err = await bulk("verify", str(ckpt), "--endpoint", sim.url, "--qps", "200", "--quiet")
        assert code == 1
        # Issue 22: verify shows the live value and the one the run set (keys only as fingerprints).
        shown = f'NotifyUrl "https://hand-edited.example.com/x" -> "{NEW_URL}"'
        assert f"url.example.com: Drift: live state differs in NotifyUrl: {shown}" in out
        assert KEY not in out and OLD_KEY not in out


async def test_old_plan_or_changed_input_is_refused(tmp_path: Path) -> None:
    src = fleet_csv(tmp_path / "fleet.csv")
    plan = tmp_path / "p.jsonl"
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200)) as sim:
        code, _, err = await bulk("plan", str(src), "--action", "AddLiveSnapshotNotifyConfig", "-o", str(plan),
                                  "--endpoint", sim.url, "--qps", "200", "--quiet")
        assert code == 0, err
        code, _, err = await bulk("run", "--plan", str(plan), "--endpoint", sim.url, "--max-plan-age", "0")
        assert code == 2 and "old" in err
        src.write_text(src.read_text() + "extra.example.com," + NEW_URL + ",no,\n")
        code, _, err = await bulk("run", "--plan", str(plan), "--endpoint", sim.url)
        assert code == 2 and "changed" in err
        assert sim.stats()["calls"].keys() == {"DescribeLiveSnapshotNotifyConfig"}


def domains_only(path: Path) -> Path:
    path.write_text("DomainName\n" + "".join(f"{d}.example.com\n" for d in ("new", "url", "gone.missing")))
    return path


async def test_a_plan_is_applied_only_with_its_own_values_and_conflicts_never_become_calls(tmp_path: Path) -> None:
    src = domains_only(tmp_path / "d.csv")
    plan = tmp_path / "p.jsonl"
    other = "https://other.cb.example.com/snap"
    sim_config = SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200,
                           missing_domains=("*.missing.example.com",))
    async with Simulator(sim_config) as sim:
        sim.notify_configs["url.example.com"] = {"DomainName": "url.example.com", "NotifyUrl": other,
                                                 "NotifyReqAuth": "no", "NotifyAuthKey": ""}
        code, _, err = await bulk("plan", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--set",
                                  f"NotifyUrl={NEW_URL}", "-o", str(plan), "--endpoint", sim.url, "--quiet")
        assert code == 0, err
        header = orjson.loads(plan.read_bytes().splitlines()[0])
        assert header["overrides"] == {"NotifyUrl": NEW_URL}

        def changes() -> dict[str, int]:
            calls = sim.stats()["calls"]
            return {a: sum(calls.get(a, {}).values())
                    for a in ("AddLiveSnapshotNotifyConfig", "UpdateLiveSnapshotNotifyConfig")}

        # Other values than the plan's: refused, nothing sent.
        code, _, err = await bulk("run", "--plan", str(plan), "--set", f"NotifyUrl={other}", "--endpoint", sim.url)
        assert code == 2 and "was made with --set NotifyUrl=" + NEW_URL in err
        assert changes() == {"AddLiveSnapshotNotifyConfig": 0, "UpdateLiveSnapshotNotifyConfig": 0}

        # The plan carries its --set values: `run --plan P`, as `bulk plan` prints it, needs nothing else.
        args = ["run", "--plan", str(plan), "--endpoint", sim.url, "--quiet"]
        code, _, err = await bulk(*args)
        assert code == 1, err  # the conflict (a domain that does not exist) is a failed row
        assert changes() == {"AddLiveSnapshotNotifyConfig": 1, "UpdateLiveSnapshotNotifyConfig": 1}
        # A started run resumes whatever the plan's age; --retry-failed never turns a PlanConflict into a call.
        code, _, err = await bulk(*args, "--max-plan-age", "0", "--retry-failed")
        assert code == 1, err
        assert changes() == {"AddLiveSnapshotNotifyConfig": 1, "UpdateLiveSnapshotNotifyConfig": 1}
        assert sim.notify_configs["url.example.com"]["NotifyUrl"] == NEW_URL


async def test_verify_refuses_an_input_that_changed_since_the_run(tmp_path: Path) -> None:
    src = domains_only(tmp_path / "d.csv")
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200)) as sim:
        code, _, err = await bulk("run", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--set",
                                  f"NotifyUrl={NEW_URL}", "--endpoint", sim.url, "--quiet", "--checkpoint",
                                  str(tmp_path / "d.ckpt"))
        assert code == 0, err
        src.write_text(src.read_text().replace("new.example.com", "renamed.example.com"))
        before = sim.stats()["total"]
        code, out, err = await bulk("verify", str(tmp_path / "d.ckpt"), "--endpoint", sim.url)
        assert code == 2 and "changed since the run" in err
        assert sim.stats()["total"] == before


async def test_a_plan_made_with_a_secret_takes_it_again_and_checks_its_fingerprint(tmp_path: Path) -> None:
    src = domains_only(tmp_path / "d.csv")
    plan = tmp_path / "p.jsonl"
    key_file, other_file = tmp_path / "key", tmp_path / "other"
    key_file.write_text(KEY + "\n")
    other_file.write_text(OLD_KEY)
    async with Simulator(SimConfig(access_keys={TEST_AK_ID: TEST_AK_SECRET}, qps=200)) as sim:
        code, _, err = await bulk("plan", str(src), "--action", "AddLiveSnapshotNotifyConfig", "--set",
                                  f"NotifyUrl={NEW_URL}", "--set", "NotifyReqAuth=yes", "--set",
                                  f"NotifyAuthKey=@{key_file}", "-o", str(plan), "--endpoint", sim.url, "--quiet")
        assert code == 0, err
        assert KEY.encode() not in plan.read_bytes()
        code, _, err = await bulk("run", "--plan", str(plan), "--endpoint", sim.url)
        assert code == 2 and "NotifyAuthKey" in err and "@env:" in err, err
        code, _, err = await bulk("run", "--plan", str(plan), "--set", f"NotifyAuthKey=@{other_file}",
                                  "--endpoint", sim.url)
        assert code == 2 and "is not the value plan" in err, err
        assert KEY not in err and OLD_KEY not in err
        assert set(sim.stats()["calls"]) == {"DescribeLiveSnapshotNotifyConfig"}
        env = {**os.environ, "THE_KEY": KEY}
        code, _, err = await bulk("run", "--plan", str(plan), "--set", "NotifyAuthKey=@env:THE_KEY",
                                  "--endpoint", sim.url, "--quiet", env=env)
        assert code == 0, err
        assert sim.notify_configs["new.example.com"]["NotifyAuthKey"] == KEY
        assert sim.notify_configs["new.example.com"]["NotifyUrl"] == NEW_URL
