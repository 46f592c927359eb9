"""Named one-line breakages of bulk's promises, each of which the suite must catch.

    python tests/mutants.py              # every mutant: apply, run its tests, expect a failure
    python tests/mutants.py -k sigterm   # the mutants whose name contains "sigterm"
    python tests/mutants.py --list       # names, and where each pattern is found today

Each mutant is a regular expression that must match exactly once somewhere
under ``bulk/`` (found by content, not by file name, so the list survives
modules being moved or split) and its replacement. The tree is copied to a
temporary directory, the mutant applied there, and its tests run against the
copy (``PYTHONPATH`` puts the copy first, for child processes too). A mutant
that leaves its tests green, or whose pattern no longer matches exactly once,
makes the script exit 1: the first is a hole in the suite, the second a list
that needs updating along with the code.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OPS = "tests/test_operations.py"


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    #: what breaks, in the words of the promise
    breaks: str
    pattern: str
    replacement: str
    #: pytest node ids or files, relative to the repository
    tests: tuple[str, ...]


MUTANTS = (
    Mutant(
        "notify-auth-key-not-compared",
        "NotifyAuthKey dropped from the comparison that decides whether a domain holds a row's config",
        r"return \{f: p\[f\] for f in _NOTIFY_FIELDS\[1:\] if f in p\}",
        'return {f: p[f] for f in _NOTIFY_FIELDS[1:] if f in p and f != "NotifyAuthKey"}',
        ("tests/test_record_edges.py::test_a_lost_update_at_a_domain_that_differs_only_in_its_key_is_sent_again",
         "tests/test_chaos.py::test_record_agrees_with_the_service"),
    ),
    Mutant(
        "v3-host-unsigned",
        "V3 signing no longer signs the host header",
        r'\n\s*"host": host,(?=\n\s*"x-acs-action")',
        "",
        ("tests/test_signing.py",),
    ),
    Mutant(
        "sigterm-unhandled",
        "SIGTERM no longer stops run, rotate and rollback gracefully (exit 3)",
        r"for sig in \(signal\.SIGINT, signal\.SIGTERM\):",
        "for sig in (signal.SIGINT,):",
        ("tests/test_signals.py",),
    ),
    Mutant(
        "tls-unverified-by-default",
        "the default client no longer verifies the endpoint's certificate",
        r"ssl_context if ssl_context is not None else True",
        "ssl_context if ssl_context is not None else False",
        ("tests/test_client.py",),
    ),
    Mutant(
        "pacing-margin-60ms",
        "the starting pacing margin raised from 12 ms to 60 ms (pace 0.943 instead of 0.988)",
        r"DEFAULT_MARGIN = 0\.012",
        "DEFAULT_MARGIN = 0.060",
        ("tests/test_pacing.py",),
    ),
    Mutant(
        "fingerprint-is-the-secret",
        "a fingerprint shows the secret itself",
        r'return "fp:" \+ hashlib\.sha256\(secret\.encode\(\)\)\.hexdigest\(\)\[:8\]',
        'return "fp:" + secret',
        ("tests/test_credentials.py", "tests/test_engine.py"),
    ),
    Mutant(
        "5xx-not-retried",
        "a 5xx answer is no longer worth retrying",
        r"or status is None or status >= 500",
        "or status is None",
        ("tests/test_client.py", "tests/test_engine.py"),
    ),
    Mutant(
        "endpoint-patience-30s",
        "an endpoint that never answers is given up on after 30 s, not the documented 10 s",
        r"connect_seconds: float = 10\.0",
        "connect_seconds: float = 30.0",
        ("tests/test_record.py",),
    ),
    Mutant(
        "library-bug-is-a-usage-error",
        "the command takes a ValueError from inside the library for a usage error (exit 2, not 70)",
        r"except BulkError as exc:  # nothing else",
        "except (BulkError, ValueError) as exc:  # nothing else",
        ("tests/test_library.py",),
    ),
    Mutant(
        "status-takes-the-run-lock",
        "bulk status opens the checkpoint as a run does, so a live run makes it 'in use'",
        r"with errors\(\), Checkpoint\.open_readonly\(checkpoint\) as ckpt:(?=\n\s*meta, counts)",
        "with errors(), Checkpoint.open(checkpoint) as ckpt:",
        (f"{OPS}::test_status_and_report_answer_while_a_run_writes_the_checkpoint",),
    ),
    Mutant(
        "checkpoint-exclusive-lock",
        "readers of a live run's checkpoint get SQLITE_BUSY",
        r'db\.execute\("PRAGMA journal_mode=WAL"\)',
        'db.execute("PRAGMA journal_mode=WAL"); db.execute("PRAGMA locking_mode=EXCLUSIVE")',
        (f"{OPS}::test_status_and_report_answer_while_a_run_writes_the_checkpoint",),
    ),
    Mutant(
        "claim-skipped",
        "rows are sent without first being claimed 'sending' in the checkpoint",
        r"self\._ckpt\.claim\(\[\(row\.line, row\.reached\) for row in chunk\],\n\s*mark=[^\n]*\)",
        "pass",
        (f"{OPS}::test_status_and_report_answer_while_a_run_writes_the_checkpoint",),
    ),
    Mutant(
        "checkpoint-unlocked",
        "a second run on the same checkpoint is not kept out",
        r"fcntl\.flock\(lock_fd, fcntl\.LOCK_EX \| fcntl\.LOCK_NB\)",
        "pass",
        (f"{OPS}::test_two_runs_racing_to_create_one_checkpoint_send_each_row_once",),
    ),
    Mutant(
        "backup-write-error-ignored",
        "a backup record that cannot be written is ignored, and the write goes ahead without it",
        r"(def _write_and_sync\(fd: int, data: bytes\) -> None:\n)(\s*)_write\(fd, data\)",
        r"\1\2try:\n\2    _write(fd, data)\n\2except OSError:\n\2    pass",
        (f"{OPS}::test_a_full_backup_disk_stops_the_run_before_any_write_it_could_not_back_up",),
    ),
    Mutant(
        "report-not-atomic",
        "a full disk leaves half a report behind",
        r"with atomic_file\(path\) as raw:",
        'with open(path, "wb") as raw:',
        (f"{OPS}::test_a_full_report_disk_fails_the_command_and_loses_nothing_of_the_run",),
    ),
    Mutant(
        "dead-runs-claim-trusted-blindly",
        "a row a killed run claimed but never recorded keeps its stale backup record, which a rollback restores",
        r"return domain in self\._latest and self\._latest\[domain\]\[0\] >= mark",
        "return True",
        ("tests/test_rollback_record.py",),
    ),
    Mutant(
        "changed-domain-not-recorded-again",
        "a domain another client changed since its record keeps that record, which a rollback restores over them",
        r"return current is not None and latest\[1\] != _seen\(current\)",
        "return False",
        ("tests/test_rollback_record.py",),
    ),
    Mutant(
        "own-change-recorded-as-theirs",
        "a domain recorded again after our write landed keeps our new key as its prior state: the rollback leaves it",
        r"return \{\*\*current, \*\*\{f: prior\.state\.get\(f, \"\"\) for f in ours\}\}",
        "return dict(current)",
        ("tests/test_rollback_record.py",),
    ),
    Mutant(
        "their-alike-field-taken-for-ours",
        "a field of another client's config alike to ours is taken for ours, and the rollback overwrites it",
        r"if not any\(f in SECRET_NAMES and prior\.wrote\[f\] for f in ours\):",
        "if False:",
        ("tests/test_rollback_record.py",),
    ),
    Mutant(
        "unknown-rows-sent-twice",
        "a resume's second pass sends again the unknown rows its first pass claimed",
        r"\n\s*if taken:\n\s*todo = \[t for t in todo if t\.line not in taken\]",
        "",
        ("tests/test_rollback_record.py",),
    ),
    Mutant(
        "backup-records-after-a-failed-sync",
        "a backup whose sync failed goes on recording: its count passes the records on disk",
        r"raise LocalFault\(self\.path, self\._broken\)",
        "pass",
        ("tests/test_rollback_record.py",),
    ),
    Mutant(
        "rollback-ignores-fields-the-run-did-not-set",
        "a rollback restores the record over another client's change to a field the run did not set",
        r"if any\(wrote\.values\(\)\):  # not a Delete",
        "if False:",
        ("tests/test_rollback_record.py",),
    ),
    Mutant(
        "2xx-error-code-taken-for-success",
        "a 200 that carries an error code, or no RequestId, or a 202 is taken for the service's success: done",
        r"if status == 200 and request_id is not None and not said:",
        "if True:",
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "another-domains-read-taken",
        "a read answered for another domain is taken for the domain's state, and backed up as its prior state",
        r"elif named and normalize_domain\(str\(named\)\) != domain:",
        "elif False:",
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "odd-typed-read-taken",
        "a read with a field that is neither a string nor null is taken for the domain's state",
        r"(\n\s*)if odd:",
        "\\1if False:",
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "hidden-key-compared",
        "a read that masks the key, or leaves it out, settles a row that sets one",
        r"if \(hidden := _hidden_key\(reader, state\)\) is None:",
        "if True:",
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "unanswered-write-failed-at-once",
        "a write a gateway answered with a 504 page, or whose connection dropped, is failed while it may still land",
        r"return self\.maybe_applied and \(self\.request_id is None or",
        "return self.maybe_applied and (False or",
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "default-switch-left-out-is-a-difference",
        "a read that leaves NotifyReqAuth out (its default) fails an Add that holds: ConfigAlreadyExists",
        r"state\[pair\[0\]\] = \"no\"",
        "pass",
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "malformed-read-back-fails-the-write",
        "a read-back refused as malformed after a write that may have landed fails the row (the write landed)",
        r"if read\.code == _NO_DOMAIN:",
        "if read.code in _CANNOT_HOLD:",
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "late-delete-not-awaited",
        "a rollback's Delete answered by a gateway is sent again at once, and lands after the config added back",
        r"outcome\.code == \"Timeout\" or action\.deletes",
        'outcome.code == "Timeout"',
        ("tests/test_record_answers.py",),
    ),
    Mutant(
        "stale-callback-accepted",
        "the receiver's signature check no longer refuses an old timestamp",
        r"if -skew > max_skew:",
        "if False:",
        ("tests/test_callback.py",),
    ),
    Mutant(
        "whole-files-readable-by-others",
        "files written whole (keys files, reports) are left readable by others",
        r"os\.replace\(tmp, path\)",
        "os.chmod(tmp, 0o644); os.replace(tmp, path)",
        ("tests/test_rotate.py", "tests/test_keys.py"),
    ),
)


def locate(mutant: Mutant, root: Path) -> tuple[Path, re.Match[str]]:
    """The one place under ``root/bulk`` where the mutant's pattern matches; ValueError otherwise."""
    found = []
    for path in sorted((root / "bulk").rglob("*.py")):
        found += [(path, m) for m in re.finditer(mutant.pattern, path.read_text())]
    if len(found) != 1:
        where = ", ".join(str(p.relative_to(root)) for p, _ in found) or "nowhere"
        raise ValueError(f"{mutant.name}: pattern must match exactly once under bulk/, matched {where}")
    return found[0]


def survives(mutant: Mutant, *, verbose: bool) -> bool:
    """Apply the mutant to a copy of the tree and run its tests there: True when they all pass."""
    with tempfile.TemporaryDirectory(prefix=f"mutant-{mutant.name}-") as tmp:
        copy = Path(tmp)
        for name in ("bulk", "tests", "pyproject.toml"):
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, copy / name)
        path, match = locate(mutant, copy)
        text = path.read_text()
        path.write_text(text[:match.start()] + match.expand(mutant.replacement) + text[match.end():])
        env = {**os.environ, "PYTHONPATH": str(copy), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
             *mutant.tests], cwd=copy, env=env, capture_output=not verbose, check=False,
        )
        return done.returncode == 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-k", default="", help="only the mutants whose name contains this")
    parser.add_argument("--list", action="store_true", help="show each mutant and where it applies")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the tests' output")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if args.k in m.name]
    failed = []
    for mutant in chosen:
        try:
            path, match = locate(mutant, ROOT)
        except ValueError as exc:
            print(f"LOST     {exc}")
            failed.append(mutant.name)
            continue
        line = path.read_text().count("\n", 0, match.start()) + 1
        where = f"{path.relative_to(ROOT)}:{line}"
        if args.list:
            print(f"{mutant.name:32} {where:28} {mutant.breaks}")
            continue
        if survives(mutant, verbose=args.verbose):
            print(f"SURVIVED {mutant.name} ({where}): {mutant.breaks}; {' '.join(mutant.tests)} stayed green")
            failed.append(mutant.name)
        else:
            print(f"caught   {mutant.name} ({where})")
    if not args.list:
        print(f"{len(chosen) - len(failed)} of {len(chosen)} mutants caught")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
