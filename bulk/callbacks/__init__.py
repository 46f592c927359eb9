"""The callback receiver as a product: signatures, key generations, the receiver, drain checks.

    from bulk.callbacks import Receiver, serve_forever, sign, verify

    async with Receiver([Path("keys/")], forward_url="http://127.0.0.1:9000/snapshots") as receiver:
        ...

``signature`` checks one callback's headers, ``keyring`` holds the key
generations the keys files give, ``receiver`` serves the callbacks where
``listen`` says, behind a ``guard`` (deadlines, a connection cap) and a ``replay`` cache, ``tally``
counts them per generation (exposed by prometheus-client through ``metrics``),
``admin`` serves the counts and probes on their own listener, ``counters``
keeps what drain answers need across a restart, ``gate`` asks receivers
whether they hold a new generation before a rotation applies it, and
``drain`` tells, from the receivers' counts, when an old generation may go.
Nothing here imports the engine or the CLI.
"""

from .admin import ADMIN_PORT, TOKEN_ENV, Admin, read_token
from .drain import (
    SNAPSHOT_INTERVAL_MAX,
    DrainError,
    DrainReport,
    UnknownGeneration,
    assess,
    check_window,
    merge,
    parse_window,
    query_drain,
)
from .gate import receivers_missing
from .guard import ConnectionGuard, Limits, descriptor_limit
from .keyring import (
    KEYS_FILE_NAME,
    Generation,
    KeyRing,
    Rejected,
    generation_name,
    keys_files,
    load_keyring,
    sources_signature,
)
from .listen import Listen
from .receiver import (
    GENERATION_HEADER,
    REJECTED,
    Callback,
    Receiver,
    serve_forever,
)
from .signature import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Verdict,
    host_of,
    sign,
    signature,
    verify,
)

__all__ = [
    "ADMIN_PORT", "GENERATION_HEADER", "KEYS_FILE_NAME", "REJECTED", "SIGNATURE_HEADER",
    "SNAPSHOT_INTERVAL_MAX", "TIMESTAMP_HEADER", "TOKEN_ENV", "Admin", "Callback", "ConnectionGuard",
    "DrainError", "DrainReport", "Generation", "KeyRing", "Limits", "Listen", "Receiver", "Rejected",
    "UnknownGeneration", "Verdict", "assess", "check_window", "descriptor_limit", "generation_name", "host_of",
    "keys_files", "load_keyring", "merge", "parse_window", "query_drain", "read_token", "receivers_missing",
    "serve_forever", "sign", "signature", "sources_signature", "verify",
]
