"""The ``bulk`` command: arguments and printing over the library.

    bulk run domains.csv --action AddLiveSnapshotNotifyConfig --set NotifyUrl=https://cb.example.com/snap
    bulk status domains.csv.add-live-snapshot-notify-config.ckpt --json

``common`` holds the app, output and the mapping of library errors to exit
codes; ``shared`` the options every API command takes; ``commands`` the fleet
commands, ``status`` where a run stands, ``rotation`` the key rotation; ``callbacks`` and ``simulate``
the ``callback`` and ``sim`` groups; ``examples`` the Examples that end each command's help.
"""

from . import callbacks, commands, inventory, rotation, simulate, status  # noqa: F401  (each registers its commands)
from .common import app, main

__all__ = ["app", "main"]
