"""bulk: apply snapshot-callback changes to thousands of ApsaraVideo Live domains.

    import bulk

    options = bulk.RunOptions(action=bulk.resolve("AddLiveSnapshotNotifyConfig"),
                              input_path=Path("domains.csv"), checkpoint_path=Path("domains.ckpt"),
                              overrides={"NotifyUrl": "https://cb.example.com/snap"})
    async with bulk.LiveClient(credentials=bulk.ChainCredentials(), endpoint=url) as client:
        result = await bulk.run(options, client=client)          # resumable: run it again
    print(result.counts, result.exit_code)

One import for a program: ``run`` takes every mode (``Mode.APPLY``,
``Mode.PLAN``, ``Mode.VERIFY``, ``Mode.ROLLBACK``); the other entry points
build its options the way the commands do: ``verify_options`` (read back
what a run recorded done), ``plan_rotation`` and ``prepare_rotation`` (new
callback auth keys, keys file first), ``plan_rollback`` (undo a run from its
backup), ``plan_from_checkpoint`` (write the plan a plan run read). Every
error raised on purpose is a ``BulkError`` carrying the command's exit code.
The ``bulk`` command is a thin layer over these; nothing here imports it.
"""

from .actions import Action, resolve
from .client import DEFAULT_ENDPOINT, DEFAULT_REGION, Failure, LiveClient, Success
from .credentials import ChainCredentials, Credentials, CredentialsError, StaticCredentials
from .engine import run
from .errors import BulkError, Exit, UsageError
from .options import IfExists, Mode, RunOptions, RunResult, RunStats, Tuning
from .report import plan_from_checkpoint
from .retry import RetryPolicy
from .rollback import Rollback, plan_rollback
from .rotate import Rotation, plan_rotation, prepare_rotation
from .verify import verify_options

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_REGION",
    "Action",
    "BulkError",
    "ChainCredentials",
    "Credentials",
    "CredentialsError",
    "Exit",
    "Failure",
    "IfExists",
    "LiveClient",
    "Mode",
    "RetryPolicy",
    "Rollback",
    "Rotation",
    "RunOptions",
    "RunResult",
    "RunStats",
    "StaticCredentials",
    "Success",
    "Tuning",
    "UsageError",
    "plan_from_checkpoint",
    "plan_rollback",
    "plan_rotation",
    "prepare_rotation",
    "resolve",
    "run",
    "verify_options",
]
