"""Key rotation as a library call: the keys file first, then an ordinary run.

    rotation = plan_rotation(Path("fleet.txt"), Path("keys-2026-11.csv"))
    prepare_rotation(rotation)                     # keys file + checkpoint, nothing sent
    # ... give the receiver keys-2026-11.csv; another day, another process:
    rotation = plan_rotation(Path("fleet.txt"), Path("keys-2026-11.csv"), prepared=True)   # never makes keys
    result = await engine.run(rotation.options, client=client)

The keys file is written atomically with mode 0600 *before* any call, and
the run's input is that very file: a resumed rotation reuses it (its SHA-256
is the checkpoint's input digest) and never makes new keys, and a keys file
that changed is refused. ``prepared=True`` is the apply step of a rotation
prepared before (by another process, maybe on another day): it takes that
rotation's keys file or nothing, so an apply whose prepare failed stops
instead of making keys of its own. ``via`` picks the family (``actions.KeyRotation``)
whose update action sets the keys: SetSnapshotCallbackAuth, or
UpdateLiveSnapshotNotifyConfig keeping each domain's current NotifyUrl
(read just before its call).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .actions import FAMILIES, Action, KeyRotation, resolve
from .checkpoint import Checkpoint
from .errors import BulkError
from .inputs import BadRow, Row, file_sha256, read_rows
from .keys import load_or_create_keys
from .options import RunOptions, Tuning
from .paths import default_checkpoint
from .prepare import prepare

__all__ = ["VIA", "Rotation", "RotationError", "plan_rotation", "prepare_rotation"]

#: --via -> the update action of the family that rotates that way, and how (``Family.rotation``)
VIA: dict[str, tuple[Action, KeyRotation]] = {r.via: (f.update, r) for f in FAMILIES if (r := f.rotation) is not None}


class RotationError(BulkError):
    """The rotation cannot start or resume; ``bad`` holds the input's bad rows, if that is why."""

    def __init__(self, message: str, bad: list[BadRow] | None = None) -> None:
        super().__init__(message)
        self.bad = bad or []


@dataclass(frozen=True, slots=True)
class Rotation:
    """A rotation ready to run: its run options, the keys file and its digest, how many domains."""

    options: RunOptions
    keys_path: Path
    keys_sha256: str
    domains: int


def plan_rotation(
    domains_path: Path,
    keys_out: Path,
    *,
    via: str = "set-callback-auth",
    key_length: int = 32,
    same_key: bool = False,
    checkpoint: Path | None = None,
    state: Path | None = None,
    tuning: Tuning | None = None,
    retry_failed: bool = False,
    canary: int | None = None,
    backup: bool = True,
    prepared: bool = False,
) -> Rotation:
    """Write the keys file (or check the one of the rotation in progress) and the run's options.

    The checkpoint is ``checkpoint``, else derived from the keys file in the
    state directory ``state`` (``paths.state_dir``); never in the keys file's
    own directory, whose every file a receiver may read. ``prepared``: only
    a rotation prepared before (``prepare_rotation``) may go on; never write
    keys. Raises RotationError, KeysFileError or UsageError.
    """
    if via not in VIA:
        raise RotationError(f"--via must be one of {', '.join(VIA)}")
    if keys_out.suffix != ".csv":
        raise RotationError("--keys-out must be a .csv file")
    action, rotation = VIA[via]
    overrides, keep = {rotation.switch: "yes"}, rotation.keep
    domains = _rotation_domains(domains_path)
    ckpt = checkpoint or default_checkpoint(keys_out, action, state=state)
    if ckpt.parent.resolve() == keys_out.parent.resolve():
        raise RotationError(f"the rotation's checkpoint {ckpt} would be in the directory of its keys file, with "
                            "its backup and failures file, where a receiver reads keys; give --checkpoint in "
                            "another directory, or leave it out to use the state directory")
    expected = None
    if ckpt.exists():
        with Checkpoint.open_readonly(ckpt) as c:
            expected = (c.meta() or {}).get("input_sha256")
    if prepared and expected is None:
        raise RotationError(f"no rotation of {keys_out} was prepared (no checkpoint {ckpt}); prepare it first with "
                            f"--keys-out {keys_out} --prepare (and the same --state-dir or --checkpoint)")
    _, digest = load_or_create_keys(keys_out, domains, length=key_length, same_key=same_key,
                                    column=rotation.key, expected_digest=expected)
    options = RunOptions(
        action=action, input_path=keys_out, checkpoint_path=ckpt, overrides=overrides, keep_current=keep,
        strict=True, extra_meta={"domains_sha256": file_sha256(domains_path), "keep_current": list(keep)},
        retry_failed=retry_failed, canary=canary, backup=backup, **(tuning or Tuning()).fields(),
    )
    return Rotation(options, keys_out, digest, len(domains))


def prepare_rotation(rotation: Rotation) -> None:
    """Write the checkpoint of the rotation and send nothing (``--prepare``)."""
    with Checkpoint.open(rotation.options.checkpoint_path) as ckpt:
        prepare(ckpt, rotation.options)


def _rotation_domains(path: Path) -> list[str]:
    """Every domain of the input; a rotation refuses an input with bad rows."""
    domains: list[str] = []
    bad: list[BadRow] = []
    for item in read_rows(path, resolve("DescribeLiveSnapshotNotifyConfig")):
        (domains.append(item.domain) if isinstance(item, Row) else bad.append(item))
    if bad:
        raise RotationError(f"{len(bad)} bad row(s) in {path}; a rotation needs a clean list", bad)
    if not domains:
        raise RotationError(f"no domains in {path}")
    return domains
