"""The options every command that calls the API shares are declared once and mean the same everywhere; the
help of every command says what goes where, shows the choices, groups the options and ends with examples that
parse."""

from __future__ import annotations

import functools
import importlib.metadata
import re
import shlex
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.core import TyperArgument, TyperGroup, TyperOption
from typer.testing import CliRunner

import bulk
from bulk.cli import app
from bulk.options import IfExists, Tuning
from bulk.rotate import VIA

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


# Help as a new user reads it: typer's CliRunner in process, 100 columns (200 where a long choice list would fold).
WIDE = {"COLUMNS": "100"}
PANELS_OF_RUN = ("Input", "What to send", "Safety", "Checkpoint and resume", "Pacing and retries", "Outputs",
                 "Connection")
# typer's own placeholders: <str>, <int>, <path>, <bool>, <list[str]>, <a|b>.
TYPED_PLACEHOLDER = re.compile(r"<[^<>\s]+>")
runner = CliRunner()


def commands(group: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group of ``bulk``, with the words that name it (the root: none)."""
    group = group or command_tree()
    yield path, group
    for name, command in getattr(group, "commands", {}).items():
        yield from commands(command, (*path, name))


@functools.cache
def command_tree() -> TyperGroup:
    """bulk's commands as click holds them, built once: CliRunner.invoke builds them for every call (40 ms, two
    thirds of a help screen's CPU). Only read: parsing and printing help change nothing in them."""
    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    return root


def help_of(*words: str, columns: int = 100) -> str:
    """What ``bulk WORDS --help`` prints: what ``runner.invoke`` does, on the tree built once."""
    with runner.isolation(env={"COLUMNS": str(columns)}) as (stdout, _, output):
        with pytest.raises(SystemExit) as exited:
            command_tree().main([*words, "--help"], prog_name="bulk")
        assert exited.value.code in (0, None), output.getvalue().decode()
        return stdout.getvalue().decode()


def panels(text: str) -> list[str]:
    """The titles of the boxes of a help screen, in order."""
    return re.findall(r"╭─ (.+?) ─", text)


def parse(argv: list[str], root: TyperGroup) -> None:
    """``bulk ARGV`` through ``root`` (``command_tree()``), as far as the command's own context: nothing is run
    or sent."""
    command: Any = root
    ctx = command.make_context("bulk", argv)
    while isinstance(command, TyperGroup):
        name, sub, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])
        assert name is not None and sub is not None, argv
        command, ctx = sub, sub.make_context(name, rest, parent=ctx)


def test_bulk_help_lists_the_commands_version_completion_and_examples() -> None:
    text = help_of()
    assert panels(text) == ["Options", "Commands"]
    for word in ("--version", "--install-completion", "--show-completion", "-h", "run", "rotate", "sim",
                 "callback", "Examples:"):
        assert word in text, word


def test_bulk_run_help_groups_its_options_in_panels_and_ends_with_examples() -> None:
    text = help_of("run")
    assert panels(text) == ["Arguments", "Options", *PANELS_OF_RUN]
    assert "Usage: bulk run [OPTIONS] [INPUT]" in text
    connection = text[text.index("╭─ Connection"):]
    for option in ("--endpoint", "--region", "--signature", "--profile"):
        assert option in connection and option not in text[:text.index("╭─ Connection")], option
    assert text.rstrip().splitlines()[-1].strip().startswith("--endpoint http://127.0.0.1:8787")


def test_no_help_shows_a_typed_placeholder_and_every_value_has_a_named_one() -> None:
    for words, command in commands():
        text = help_of(*words)
        assert not TYPED_PLACEHOLDER.search(text), (words, TYPED_PLACEHOLDER.findall(text))
        for param in command.params:
            if isinstance(param, TyperOption) and not param.is_flag and not param.type_descriptor.is_choice:
                assert param.metavar and param.metavar in text, (words, param.name)
            if isinstance(param, TyperArgument):
                assert param.metavar and param.metavar.isupper(), (words, param.name)


def test_every_enum_option_shows_and_checks_its_choices() -> None:
    seen: dict[str, tuple[str, ...]] = {}
    for words, command in commands():
        text = " ".join(help_of(*words, columns=200).split())
        for param in command.params:
            if isinstance(param, TyperOption) and param.type_descriptor.is_choice:
                choices = tuple(str(getattr(c, "value", c)) for c in param.type_descriptor.choices or ())
                assert f"{param.opts[0]} [{'|'.join(choices)}]" in text, (words, param.name)
                seen[param.opts[0]] = choices
    assert seen == {"--if-exists": tuple(IfExists), "--signature": ("v3", "v1"), "--format": ("csv", "jsonl"),
                    "--via": tuple(VIA), "--type": ("liveVideo", "liveEdge"),
                    "--status": ("online", "offline", "configuring"),
                    "--match": ("fuzzy_match", "pre_match", "suf_match", "full_match")}
    refused = runner.invoke(app, ["run", "in.csv", "-a", "AddLiveSnapshotNotifyConfig", "--if-exists", "overwrite"])
    assert refused.exit_code == 2 and "fail" in refused.output and "update" in refused.output


@pytest.mark.parametrize("words", [(), ("run",), ("sim",), ("callback", "serve")])
def test_h_is_help(words: tuple[str, ...]) -> None:
    short = runner.invoke(app, [*words, "-h"], env=WIDE, prog_name="bulk")
    assert short.exit_code == 0 and short.stdout == help_of(*words)


def test_version_prints_the_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"bulk {bulk.__version__}\n"
    assert bulk.__version__ == importlib.metadata.version("bulk")


@pytest.mark.parametrize("argv", [
    ["callback", "sign", "--host", "cb.example.com", "--key", "k"],  # now --callback-host, as in callback serve
    ["callback", "verify", "--callback-host", "cb.example.com", "--timestamp", "1", "--key", "k",
     "--signature", "0f"],  # now --live-signature: --signature is the API signature scheme everywhere else
    ["sim", "serve", "--state", "sim.json"],  # now --state-file: --state-dir is where runs keep theirs
])
def test_a_renamed_flag_is_refused_under_its_old_name(argv: list[str]) -> None:
    result = runner.invoke(app, argv)
    assert result.exit_code == 2 and "No such option" in result.output


def test_listening_is_bind_and_the_notify_url_host_is_callback_host_everywhere() -> None:
    meanings: dict[str, set[tuple[str, ...]]] = {}
    for words, command in commands():
        for param in command.params:
            for opt in getattr(param, "opts", ()):
                meanings.setdefault(opt, set()).add(words)
    assert "--host" not in meanings
    assert meanings["--bind"] == {("sim", "serve"), ("callback", "serve")}
    assert meanings["--callback-host"] == {("callback", "serve"), ("callback", "verify"), ("callback", "sign")}


def examples(epilog: str) -> list[str]:
    """The commands of an Examples section: lines that start with ``bulk``, a trailing backslash going on."""
    found, pending = [], ""
    for line in epilog.splitlines():
        text = pending + line.strip()
        if text.endswith("\\"):
            pending = text[:-1]
            continue
        pending = ""
        if text.startswith("bulk "):
            found.append(text)
    return found


def test_every_command_ends_with_examples_that_parse_and_fit_100_columns() -> None:
    root = command_tree()
    for words, command in commands(root):
        if words in (("sim",), ("callback",)):
            continue  # a group of one or a few commands: their own help has the examples
        epilog = command.epilog or ""
        assert epilog.startswith("Examples:"), words
        found = examples(epilog)
        assert found, words
        assert any(e.split()[1:1 + len(words)] == list(words) for e in found), (words, found)
        for line in epilog.splitlines():
            assert len(line) <= 98, (words, line)  # the help's padding leaves 98 of 100 columns
        for example in found:
            parse(shlex.split(example)[1:], root)
