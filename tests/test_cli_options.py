"""The options every command that calls the API shares are declared once and mean the same everywhere."""

from __future__ import annotations

import typer.main

from bulk.cli import app
from bulk.options import Tuning

SHARED = {"qps", "concurrency", "max_attempts", "timeout", "max_failure_rate", "log_file",
          "endpoint", "region", "signature", "profile"}
API_COMMANDS = ("run", "plan", "verify", "rotate", "rollback")


def test_every_api_command_takes_the_shared_options_with_one_meaning() -> None:
    group = typer.main.get_command(app)
    seen: dict[str, tuple[object, ...]] = {}
    for name in API_COMMANDS:
        command = group.commands[name]  # type: ignore[attr-defined]
        params = {p.name: p for p in command.params}
        assert SHARED <= params.keys(), (name, SHARED - params.keys())
        for option in SHARED:
            p = params[option]
            shape = (tuple(p.opts), p.help, p.default)
            assert seen.setdefault(option, shape) == shape, (name, option)
        # What the command itself receives is the built Tuning and Connection, not the loose options.
        assert "tuning" not in params and "connection" not in params
    # The defaults are the library's own.
    defaults = Tuning()
    assert {o: seen[o][2] for o in ("qps", "max_attempts", "timeout", "max_failure_rate")} == {
        "qps": defaults.qps, "max_attempts": defaults.max_attempts, "timeout": defaults.timeout,
        "max_failure_rate": defaults.max_failure_rate}
