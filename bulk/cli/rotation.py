"""``bulk rotate``: new callback auth keys for every domain, keys file first.

    bulk rotate domains.txt --keys-out keys/keys-2026-11.csv --prepare   # the keys file only
    bulk rotate domains.txt --keys-out keys/keys-2026-11.csv             # then the calls

The rotation itself is the library's (``bulk.rotate``); this parses its
options, prints what it wrote and runs it like any run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import Exit
from ..options import Tuning
from ..rotate import VIA, plan_rotation, prepare_rotation
from ..textfile import RunTextfile
from .commands import BackupOpt, CanaryOpt, QuietOpt, ReportOpt, RetryOpt, StateDirOpt, finish_apply
from .common import app, err, errors, execute, leaves_metrics, out
from .shared import Connection, calls_the_api

__all__ = ["rotate_cmd"]


@app.command("rotate")
@calls_the_api
@leaves_metrics("rotate")
def rotate_cmd(
    input: Annotated[Path, typer.Argument(help="Domains: .csv with DomainName, .jsonl, or one name per line.")],
    keys_out: Annotated[Path, typer.Option(help="Keys file to write (CSV, mode 0600), e.g. keys-2026-11.csv.")],
    key_length: Annotated[int, typer.Option(help="Key length, 16 to 32.")] = 32,
    same_key: Annotated[bool, typer.Option(help="One key for every domain.")] = False,
    via: Annotated[str, typer.Option(help=f"{' or '.join(VIA)}.")] = "set-callback-auth",
    checkpoint: Annotated[Path | None, typer.Option(
        help="Checkpoint file (default: derived from --keys-out, in the state directory); "
             "never in the keys file's directory, which a receiver reads.")] = None,
    state_dir: StateDirOpt = None,
    retry_failed: RetryOpt = False,
    report: ReportOpt = None,
    prepare: Annotated[bool, typer.Option(
        help="Only write the keys file and the checkpoint; send nothing. Run again without it to apply.")] = False,
    canary: CanaryOpt = None,
    backup: BackupOpt = True,
    quiet: QuietOpt = False,
    *,
    tuning: Tuning,
    connection: Connection,
    textfile: RunTextfile | None,
) -> None:
    """Give every domain a new callback auth key: keys file first, then the calls.

    Safe order: `--prepare`, give the receiver the new keys file, run the same
    command without `--prepare`, check with `bulk verify`, then wait for the old
    keys to drain (`bulk callback drain`) before retiring them. `bulk rollback`
    on its checkpoint puts the old keys back.
    """
    with errors():
        rotation = plan_rotation(input, keys_out, via=via, key_length=key_length, same_key=same_key,
                                 checkpoint=checkpoint, state=state_dir, tuning=tuning, retry_failed=retry_failed,
                                 canary=canary, backup=backup)
    if not quiet:
        err.print(f"bulk: keys file {keys_out} ({rotation.domains} domain(s), mode 0600, "
                  f"sha256 {rotation.keys_sha256[:12]})")
    options = rotation.options
    if prepare:
        if textfile is not None:
            textfile.command = "rotate-prepare"
        err.print(f"bulk: checkpoint {options.checkpoint_path}", soft_wrap=True)
        with errors():
            prepare_rotation(rotation)
        out.print(f"prepared: give the receiver {keys_out}, then run this command again without --prepare")
        raise typer.Exit(Exit.OK)
    raise typer.Exit(execute(options, connection, quiet=quiet,
                              summary=lambda r: finish_apply(r, options, report=report, quiet=quiet,
                                                             textfile=textfile),
                              outputs=(report,)))
