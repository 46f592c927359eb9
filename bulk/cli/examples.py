"""The Examples section at the end of each command's help, all in one place.

    @app.command("run", epilog=examples.RUN)

Each example is a ``#`` line that says what it does, then the command; a
long one goes on after a trailing backslash, as in a shell, so that no line
is wider than the 100 columns the help is read at. The suite parses every
one through the command's own parser (tests/test_cli_options.py), so that
none can name an option that is gone.
"""

from __future__ import annotations

__all__ = [
    "CALLBACK_DRAIN", "CALLBACK_SERVE", "CALLBACK_SIGN", "CALLBACK_VERIFY", "DOMAINS", "EXPORT", "PLAN", "REPORT",
    "ROLLBACK", "ROOT", "ROTATE", "RUN", "SIM_SERVE", "STATUS", "VALIDATE", "VERIFY",
]

_RUN_DIR = "~/.local/state/bulk/domains.csv.add-live-snapshot-notify-config"


def _examples(*lines: str) -> str:
    """An epilog: the title, then ``lines`` one a line."""
    return "Examples:\n\n" + "\n".join(lines)


ROOT = _examples(
    "# a local Live API to rehearse against: it prints its URL and throwaway credentials",
    "bulk sim serve",
    "# every domain in domains.csv gets the same NotifyUrl; the same command again resumes",
    "bulk run domains.csv -a AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap",
    "# how far it got (the run prints where its checkpoint is)",
    f"bulk status {_RUN_DIR}",
    "",
    "Each command's options and examples: bulk COMMAND -h",
)
RUN = _examples(
    "# every domain in domains.csv gets the same NotifyUrl; the same command again resumes",
    "bulk run domains.csv -a AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap",
    "# send nothing: check every row and count the calls",
    "bulk run domains.csv -a AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap \\",
    "    --dry-run",
    "# 10 rows first, each read back (exit 0 if all hold the change); a config already there is updated",
    "bulk run domains.csv -a AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap \\",
    "    --canary 10 --if-exists update",
    "# apply a plan made by `bulk plan`",
    "bulk run --plan plan.jsonl",
    "# rehearse against `bulk sim serve`",
    "bulk run domains.csv -a AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap \\",
    "    --endpoint http://127.0.0.1:8787 --qps 100",
)
VALIDATE = _examples(
    "# every row checked as `bulk run` would; each bad row listed with its line number",
    "bulk validate domains.csv -a AddLiveSnapshotNotifyConfig \\",
    "    --set NotifyUrl=https://cb.example.com/snap",
)
STATUS = _examples(
    "# a run's directory in the state directory, or its checkpoint file",
    f"bulk status {_RUN_DIR}",
    "# for a program",
    "bulk status run.ckpt --json",
)
REPORT = _examples(
    "# the rows that did not succeed, as CSV on stdout",
    f"bulk report {_RUN_DIR} --failed-only",
    "# every row with its RequestId, as JSON lines",
    "bulk report run.ckpt --format jsonl -o report.jsonl",
)
PLAN = _examples(
    "# read every domain's current state and write what would change; nothing is changed",
    "bulk plan domains.csv -a AddLiveSnapshotNotifyConfig \\",
    "    --set NotifyUrl=https://cb.example.com/snap -o plan.jsonl",
    "# then apply exactly that",
    "bulk run --plan plan.jsonl",
)
VERIFY = _examples(
    "# read back every row the run recorded done",
    f"bulk verify {_RUN_DIR}",
    "# a run that set a secret: give it again, from a file (it is never stored)",
    "bulk verify run.ckpt --set NotifyAuthKey=@notify-key.txt --report verify.csv",
)
ROLLBACK = _examples(
    "# put back what the run changed, as its backup recorded it",
    f"bulk rollback {_RUN_DIR}",
    "# also the domains another client changed since the run",
    "bulk rollback run.ckpt --force",
)
ROTATE = _examples(
    "# 1. the keys file only: give it to the receiver (`bulk callback serve --keys keys/`)",
    "bulk rotate domains.txt --keys-out keys/keys-2026-11.csv --prepare",
    "# 2. the calls: the same command without --prepare",
    "bulk rotate domains.txt --keys-out keys/keys-2026-11.csv",
    "# the notify config's key instead, 10 domains first",
    "bulk rotate domains.txt --keys-out keys/keys-2026-11.csv --via update-notify-config --canary 10",
)
SIM_SERVE = _examples(
    "# on 127.0.0.1:8787; it prints the URL and throwaway credentials to export",
    "bulk sim serve",
    "# a slow, faulty service: 200 ms latency, 5 % injected faults, the same ones every time",
    "bulk sim serve --latency-ms 200 --error-rate 0.05 --seed 1",
    "# 20 live streams posting signed callbacks to their NotifyUrls; configs kept across restarts",
    "bulk sim serve --streams 20 --state-file sim-state.json",
)
CALLBACK_VERIFY = _examples(
    "# the headers of one callback, against the keys of a keys file",
    "bulk callback verify --callback-host cb.example.com --keys-file keys/keys-2026-11.csv \\",
    "    --timestamp 1764720000 --live-signature 0f6e6a5b2c3d4e5f60718293a4b5c6d7",
)
CALLBACK_SIGN = _examples(
    "# the headers a callback to https://cb.example.com/snap signed with the key in key.txt carries",
    "bulk callback sign --callback-host https://cb.example.com/snap --key @key.txt",
)
CALLBACK_SERVE = _examples(
    "# every key generation in keys/, for callbacks to cb.example.com; admin on 127.0.0.1:8081",
    "bulk callback serve --keys keys/ --callback-host cb.example.com",
    "# on every address, behind a TLS terminator",
    "bulk callback serve --keys keys/ --callback-host cb.example.com --bind 0.0.0.0 --behind-tls-proxy",
)
CALLBACK_DRAIN = _examples(
    "# may the keys of keys-2026-10.csv go? exit 0 when no callback signed with them came in 24 h",
    "bulk callback drain --receiver http://127.0.0.1:8081 --generation keys-2026-10.csv --window 24h",
)
DOMAINS = _examples(
    "# every live domain of the account, as an input bulk run takes",
    "bulk domains -o domains.csv",
    "# only online domains whose name ends with .example.com",
    "bulk domains --status online --name .example.com --match suf_match -o domains.csv",
)
EXPORT = _examples(
    "# each domain's snapshot callback and callback auth as they are now (keys as fingerprints)",
    "bulk export domains.csv -o before.csv",
)
