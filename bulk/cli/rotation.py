"""``bulk rotate``: new callback auth keys for every domain, keys file first, applied only through a gate.

    bulk rotate domains.txt --keys-out keys/keys-2026-11.csv --prepare        # 1. the keys file only
    bulk rotate domains.txt --keys keys/keys-2026-11.csv \\
        --require-receivers http://rx-1:8081 --require-receivers http://rx-2:8081   # 2. apply, once loaded
    bulk rotate domains.txt --keys-out keys/keys-2026-11.csv --yes            # both at once (rehearsals)

Nothing is applied on good intentions. The apply step (``--keys``) takes a
prepared keys file or nothing: an apply whose prepare failed stops instead
of making keys of its own. It sends nothing until every receiver named by
``--require-receivers`` says it has loaded that very file (by its SHA-256)
or, without that flag, until the operator confirms on a terminal; without
a terminal, ``--yes`` is the only other way through. The rotation itself
is the library's (``bulk.rotate``); this parses its options and gates.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from ..callbacks.admin import TOKEN_ENV, read_token
from ..callbacks.gate import receivers_missing
from ..errors import Exit
from ..options import Tuning
from ..rotate import VIA, Rotation, plan_rotation, prepare_rotation
from ..textfile import RunTextfile
from . import examples
from .commands import BackupOpt, CanaryOpt, QuietOpt, ReportOpt, RetryOpt, StateDirOpt, finish_apply
from .common import app, err, errors, execute, fail, leaves_metrics, out
from .shared import SAFETY, SEND, STATE, Connection, calls_the_api

__all__ = ["Via", "rotate_cmd"]

#: the ways a rotation can set the keys: ``bulk.rotate.VIA``'s names, spelled out for the help to show them
Via = Literal["set-callback-auth", "update-notify-config"]


def interactive() -> bool:
    """Whether someone at a terminal can answer the confirmation."""
    return sys.stdin.isatty()


@app.command("rotate", epilog=examples.ROTATE)
@calls_the_api
@leaves_metrics("rotate")
def rotate_cmd(
    input: Annotated[Path, typer.Argument(
        metavar="INPUT", help="Domains: .csv with DomainName, .jsonl, or one name per line.")],
    keys_out: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=SEND,
        help="Keys file to write (CSV, mode 0600), e.g. keys-2026-11.csv: with --prepare the prepare step, "
             "without it generate and apply in one go (terminals and rehearsals).")] = None,
    keys: Annotated[Path | None, typer.Option(
        "--keys", metavar="PATH", rich_help_panel=SEND,
        help="The apply step: the keys file a --prepare wrote. Never generates one.")] = None,
    require_receivers: Annotated[list[str] | None, typer.Option(
        "--require-receivers", metavar="URL", rich_help_panel=SAFETY,
        help="Admin listener URL of a receiver (repeatable): send nothing until every one has loaded the keys "
             "file, by its SHA-256.")] = None,
    yes: Annotated[bool, typer.Option(
        "--yes", rich_help_panel=SAFETY,
        help="Apply without asking (needed without a terminal, unless --require-receivers).")] = False,
    admin_token_file: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=SAFETY,
        help=f"A file holding the receivers' admin token (default: ${TOKEN_ENV}, if set).")] = None,
    key_length: Annotated[int, typer.Option(metavar="N", rich_help_panel=SEND, help="Key length, 16 to 32.")] = 32,
    same_key: Annotated[bool, typer.Option(rich_help_panel=SEND, help="One key for every domain.")] = False,
    via: Annotated[Via, typer.Option(
        rich_help_panel=SEND, help="The key to rotate: " + " or ".join(
            f"{rotation.key} ({via})" for via, (_, rotation) in VIA.items()) + ".")] = "set-callback-auth",
    checkpoint: Annotated[Path | None, typer.Option(
        metavar="PATH", rich_help_panel=STATE,
        help="Checkpoint file (default: derived from the keys file, in the state directory); "
             "never in the keys file's directory, which a receiver reads.")] = None,
    state_dir: StateDirOpt = None,
    retry_failed: RetryOpt = False,
    report: ReportOpt = None,
    prepare: Annotated[bool, typer.Option(
        rich_help_panel=SAFETY,
        help="Only write the keys file and the checkpoint; send nothing. Apply later with --keys.")] = False,
    canary: CanaryOpt = None,
    backup: BackupOpt = True,
    quiet: QuietOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
    textfile: RunTextfile | None,
) -> None:
    """Give every domain a new callback auth key: keys file first, then the calls, through a gate.

    Safe order (docs/rotation.md): `--keys-out KEYS --prepare`; give every receiver the new keys file;
    `--keys KEYS --require-receivers URL...`; `bulk verify`; `bulk callback drain` until the old keys have
    drained; retire them. `bulk rollback` on its checkpoint puts the old keys back.
    """
    receivers = require_receivers or []
    path = _keys_path(keys_out, keys, prepare=prepare, receivers=receivers)
    if not prepare and not receivers and not yes and not interactive():
        fail("a rotation applies new keys to every domain; without a terminal to confirm, give --require-receivers "
             "URL (apply once every receiver has loaded them) or --yes")
    with errors():
        rotation = plan_rotation(input, path, via=via, key_length=key_length, same_key=same_key,
                                 checkpoint=checkpoint, state=state_dir, tuning=tuning, retry_failed=retry_failed,
                                 canary=canary, backup=backup, prepared=keys is not None)
    if not quiet:
        err.print(f"bulk: keys file {path} ({rotation.domains} domain(s), mode 0600, "
                  f"sha256 {rotation.keys_sha256[:12]})", soft_wrap=True)
    options = rotation.options
    if prepare:
        if textfile is not None:
            textfile.command = "rotate-prepare"
        err.print(f"bulk: checkpoint {options.checkpoint_path}", soft_wrap=True)
        with errors():
            prepare_rotation(rotation)
        out.print(f"prepared: give every receiver {path}, then apply it with --keys {path}", soft_wrap=True)
        raise typer.Exit(Exit.OK)
    if receivers:
        _require_loaded(rotation, receivers, admin_token_file)
    elif not yes:
        _confirm(rotation)
    raise typer.Exit(execute(options, connection, quiet=quiet,
                              summary=lambda r: finish_apply(r, options, report=report, quiet=quiet,
                                                             textfile=textfile),
                              outputs=(report,)))


def _keys_path(keys_out: Path | None, keys: Path | None, *, prepare: bool, receivers: list[str]) -> Path:
    """The keys file of the step the options name (usage error for a mix that means nothing)."""
    if (keys_out is None) == (keys is None):
        fail("give --keys-out KEYS (to prepare, or to generate and apply at once) or --keys KEYS (to apply a "
             "prepared file), one of them")
    if keys is not None and prepare:
        fail("--prepare writes a new keys file: give it --keys-out, not --keys")
    if receivers and keys is None:
        fail("--require-receivers gates the apply of a prepared keys file: prepare with --keys-out KEYS --prepare, "
             "give the receivers KEYS, then apply with --keys KEYS --require-receivers URL")
    return keys or keys_out  # type: ignore[return-value]  # one of them is set: checked above


def _require_loaded(rotation: Rotation, receivers: list[str], token_file: Path | None) -> None:
    """Exit 2, naming them, unless every receiver has loaded the rotation's keys file."""
    try:
        token = read_token(token_file)
    except ValueError as exc:
        fail(str(exc))
    missing = asyncio.run(receivers_missing(receivers, sha256=rotation.keys_sha256, token=token))
    for url, why in missing.items():
        err.print(f"bulk: receiver {url} {why}", soft_wrap=True)
    if missing:
        fail(f"{len(missing)} of {len(receivers)} receiver(s) have not loaded {rotation.keys_path.name} "
             f"(sha256 {rotation.keys_sha256[:12]}): {', '.join(missing)}; nothing sent")
    err.print(f"bulk: all {len(receivers)} receiver(s) have loaded {rotation.keys_path.name}", soft_wrap=True)


def _confirm(rotation: Rotation) -> None:
    """Ask at the terminal; a no sends nothing and leaves the rotation prepared, to apply later with --keys."""
    question = (f"Apply the keys of {rotation.keys_path} (sha256 {rotation.keys_sha256[:12]}) to "
                f"{rotation.domains} domain(s)? Every receiver must have loaded them")
    if typer.confirm(question, default=False, err=True):
        return
    if not rotation.options.checkpoint_path.exists():
        with errors():
            prepare_rotation(rotation)  # a one-step rotation's new keys stay usable: apply them with --keys
    fail(f"not applied; nothing sent. Apply later with --keys {rotation.keys_path}")
