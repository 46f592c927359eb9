"""The deployment files say what docs/deploy.md says, and use only flags that bulk has."""

from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from bulk.cli import app

ROOT = Path(__file__).resolve().parent.parent
UNITS = ROOT / "deploy" / "systemd"
K8S = ROOT / "deploy" / "k8s"
#: flags another branch adds (gates: issue 23 item 1); the files use them already
#: where the units expect bulk (docs/deploy.md: installed with pip into /usr/local)
UNIT_BULK = "/usr/local/bin/bulk"


def load_all(path: Path) -> list[Any]:
    return list(yaml.safe_load_all(path.read_text()))


def kinds(path: Path) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for doc in load_all(path):
        found.setdefault(doc["kind"], []).append(doc)
    return found


@functools.cache
def command_tree() -> Any:
    """bulk's commands as click holds them: built once (some 40 ms each time), only read."""
    return typer.main.get_command(app)


def options_of(words: list[str]) -> tuple[str, set[str]]:
    """A bulk command line's command ("rotate", "callback serve") and the options it gives."""
    command: Any = command_tree()
    path: list[str] = []
    for word in words:
        if not hasattr(command, "commands") or word.startswith("-"):
            break
        assert word in command.commands, f"bulk has no command {' '.join([*path, word])}"
        command = command.commands[word]
        path.append(word)
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    given = {w.split("=", 1)[0] for w in words if w.startswith("--")}
    return " ".join(path), given - known


def bulk_lines(text: str) -> list[list[str]]:
    """Every bulk command line in a shell script or an ExecStart (line continuations joined)."""
    text = text.replace("\\\n", " ")
    lines = []
    for line in text.splitlines():
        line = line.split("#", 1)[0] if line.lstrip().startswith("#") else line
        for match in re.finditer(r"(?:^|[\s'/])bulk\s+([a-z].*)$", line):
            # The end of an ExecStart's `sh -c '...'`; the apply script's one gate per replica, spelled out.
            words = match[1].rstrip().removesuffix("'").replace("$receivers", "--require-receivers http://r:8081")
            lines.append(shlex.split(words))
    return lines


def every_invocation() -> list[tuple[str, list[str]]]:
    """(file, the words after ``bulk``) of every command the deployment files run."""
    found: list[tuple[str, list[str]]] = []
    for name, service in yaml.safe_load((ROOT / "compose.yaml").read_text())["services"].items():
        found.append((f"compose.yaml:{name}", service["command"]))
    for doc in load_all(K8S / "receiver.yaml"):
        if doc["kind"] == "Deployment":
            found.append(("receiver.yaml", doc["spec"]["template"]["spec"]["containers"][0]["args"]))
    for job in kinds(K8S / "cronjobs.yaml")["CronJob"]:
        script = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"][0]
        found.extend((f"cronjobs.yaml:{job['metadata']['name']}", words) for words in bulk_lines(script))
    for unit in sorted(UNITS.glob("*.service")):
        execs = re.findall(r"^ExecStart=(.*)$", unit.read_text().replace("\\\n", " "), flags=re.M)
        found.extend((unit.name, words) for text in execs for words in bulk_lines(text.replace("%%", "%")))
    return found


def test_every_command_the_deployment_files_run_exists_with_its_flags() -> None:
    invocations = every_invocation()
    commands = {options_of(words)[0] for _, words in invocations}
    assert commands == {"sim serve", "run", "rotate", "callback serve"}, commands
    for where, words in invocations:
        command, unknown = options_of(words)
        assert not unknown, f"{where}: bulk {command} has no {sorted(unknown)}"
    # The apply steps are gated on the receivers, and every receiver names its downstream (or its absence).
    applies = [w for where, w in invocations if "rotate" in w and "--prepare" not in w]
    assert applies and all("--require-receivers" in w for w in applies), applies
    serves = [w for _, w in invocations if w[:2] == ["callback", "serve"]]
    assert len(serves) == 3 and all({"--forward", "--no-forward"} & set(w) for w in serves), serves


def test_the_image_is_built_from_the_lock_and_runs_bulk_as_a_user() -> None:
    lines = [line.strip() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    assert lines[0] == "FROM python:3.11-slim"
    text = "\n".join(lines)
    assert "pip install --require-hashes -r /tmp/bulk/requirements.lock" in text
    assert "pip install --no-deps /tmp/bulk" in text
    assert text.index("--require-hashes") < text.index("--no-deps")
    [user] = [line.split(None, 1)[1] for line in lines if line.startswith("USER ")]
    assert user.split(":")[0] not in ("root", "0")
    assert "useradd --system --uid 10001" in text and user == "bulk:bulk"
    assert lines.index(f"USER {user}") < lines.index('ENTRYPOINT ["bulk"]')
    assert lines[-1] == 'CMD ["--help"]'


def test_compose_runs_a_rotation_against_the_simulator_through_the_receiver() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    assert list(services) == ["sim", "setup", "prepare", "receiver", "rotate"]
    assert {s["image"] for s in services.values()} == {"bulk:local"} and services["sim"]["build"] == "."
    needs = {name: set(s.get("depends_on", {})) for name, s in services.items()}
    assert needs == {"sim": set(), "setup": {"sim"}, "prepare": {"setup"}, "receiver": {"prepare"},
                     "rotate": {"receiver"}}
    assert services["rotate"]["depends_on"]["receiver"]["condition"] == "service_healthy"
    assert "/readyz" in " ".join(services["receiver"]["healthcheck"]["test"])
    for name in ("setup", "prepare", "rotate"):
        command = services[name]["command"]
        assert command[command.index("--endpoint") + 1] == "http://sim:8787"
    prepare, rotate = services["prepare"]["command"], services["rotate"]["command"]
    keys = prepare[prepare.index("--keys-out") + 1]
    assert keys == rotate[rotate.index("--keys-out") + 1] and "--prepare" in prepare and "--prepare" not in rotate
    assert Path(keys).parent.as_posix() == services["receiver"]["command"][3]  # --keys: the receiver reads it


def cronjob(name: str) -> dict[str, Any]:
    [job] = [j for j in kinds(K8S / "cronjobs.yaml")["CronJob"] if j["metadata"]["name"] == name]
    return job


def pod_failure_action(rules: list[dict[str, Any]], container: str, code: int) -> str:
    """What Kubernetes does when ``container`` exits ``code``: the first rule that matches; else Count."""
    for rule in rules:
        on = rule.get("onExitCodes")
        if on is None or on.get("containerName", container) != container:
            continue
        if (code in on["values"]) == (on["operator"] == "In"):
            return str(rule["action"])
    return "Count"


@pytest.mark.parametrize("name", ["bulk-rotate-prepare", "bulk-rotate-apply"])
def test_each_rotation_cronjob_resumes_on_exit_3_only(name: str) -> None:
    job = cronjob(name)
    assert job["spec"]["concurrencyPolicy"] == "Forbid"
    spec = job["spec"]["jobTemplate"]["spec"]
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never" and spec["backoffLimit"] >= 1  # podFailurePolicy requires Never
    [container] = pod["containers"]
    assert container["image"] == "registry.example.com/bulk:0.1.0"
    rules = spec["podFailurePolicy"]["rules"]
    actions = {code: pod_failure_action(rules, container["name"], code) for code in (1, 2, 3, 4, 5, 70)}
    assert actions == {1: "FailJob", 2: "FailJob", 3: "Count", 4: "FailJob", 5: "FailJob", 70: "FailJob"}
    assert {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]} in rules
    # The run state is on the persistent volume: a retried pod finds the checkpoint and resumes.
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert claims["state"] == "bulk-state" and env["BULK_STATE_DIR"].startswith(mounts["state"] + "/")
    assert {c["metadata"]["name"] for c in kinds(K8S / "storage.yaml")["PersistentVolumeClaim"]} == {
        "bulk-keys", "bulk-state"}


def test_the_receiver_is_ready_on_its_admin_listeners_readyz() -> None:
    objects = kinds(K8S / "receiver.yaml")
    [deployment] = objects["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "registry.example.com/bulk:0.1.0"
    args = container["args"]
    admin_port = int(args[args.index("--admin-bind") + 1].rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/readyz" and ports[probe["port"]] == admin_port == 8081
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert pod["securityContext"]["runAsNonRoot"] is True
    # Every replica reads the keys from the one shared volume, which the prepare CronJob writes.
    keys_dir = args[args.index("--keys") + 1]
    [keys_mount] = [m for m in container["volumeMounts"] if keys_dir.startswith(m["mountPath"] + "/")]
    [volume] = [v for v in pod["volumes"] if v["name"] == keys_mount["name"]]
    assert volume["persistentVolumeClaim"]["claimName"] == "bulk-keys" and keys_mount["readOnly"] is True
    prepare = cronjob("bulk-rotate-prepare")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert f"--keys-out \"{keys_dir}/keys-$(date +%Y-%m).csv\"" in prepare["args"][0]
    headless = [s for s in objects["Service"] if s["spec"].get("clusterIP") == "None"]
    assert [s["metadata"]["name"] for s in headless] == ["bulk-receiver-replicas"]
    assert "bulk-receiver-replicas" in cronjob("bulk-rotate-apply")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]["containers"][0]["args"][0]


def unit(name: str) -> dict[str, dict[str, str]]:
    """A unit file's sections and settings (the last value of a setting given twice)."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in (UNITS / name).read_text().replace("\\\n", " ").splitlines():
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            current[key] = value
    return sections


def test_the_units_say_what_the_docs_say() -> None:
    receiver = unit("bulk-receiver.service")["Service"]
    assert receiver["Restart"] == "on-failure" and receiver["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert receiver["ExecStart"].startswith(f"{UNIT_BULK} callback serve ") and receiver["User"] == "bulk"
    for step, day in (("prepare", "01"), ("apply", "02")):
        service = unit(f"bulk-rotate-{step}.service")["Service"]
        assert service["Type"] == "oneshot" and service["User"] == "bulk"
        # Only exit 3 comes back by itself, as in the CronJobs.
        assert service["Restart"] == "on-failure" and set(service["RestartPreventExitStatus"].split()) == {
            "1", "2", "4", "5", "70", "130"}
        timer = unit(f"bulk-rotate-{step}.timer")
        assert timer["Timer"]["OnCalendar"] == f"*-*-{day} 02:00:00" and timer["Timer"]["Persistent"] == "true"
    assert sorted(p.name for p in UNITS.iterdir()) == [
        "bulk-receiver.service", "bulk-rotate-apply.service", "bulk-rotate-apply.timer",
        "bulk-rotate-prepare.service", "bulk-rotate-prepare.timer"]


def test_the_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    bulk = Path(sys.executable).with_name("bulk")  # the units' /usr/local/bin/bulk, which this machine may lack
    for path in UNITS.iterdir():
        (tmp_path / path.name).write_text(path.read_text().replace(UNIT_BULK, str(bulk)))
    units = sorted(str(p) for p in tmp_path.iterdir())
    answer = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True, timeout=60,
                            check=False)
    assert answer.returncode == 0 and not answer.stderr.strip(), answer.stderr


def test_the_deployment_doc_names_every_file() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for path in ("Dockerfile", "compose.yaml", *(f"deploy/{p.parent.name}/{p.name}" for p in
                                                 (*UNITS.iterdir(), *K8S.iterdir()))):
        assert f"`{path}`" in doc, path
    for said in ("/readyz", "concurrencyPolicy: Forbid", "podFailurePolicy", "--require-receivers", "bulk:local",
                 "registry.example.com/bulk:0.1.0", "BULK_STATE_DIR", "docs/alerts.md"):
        assert said in doc, said
