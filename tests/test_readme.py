import re
from pathlib import Path

import click

from marketcast.cli import cli, main

README = (Path(__file__).parents[1] / "README.md").read_text()


def commands(group=cli, prefix=()):
    """Every command as its words after ``marketcast``, subcommands included."""
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


def test_every_command_is_documented_and_has_help(capsys):
    assert set(cli.commands) == {"run", "backtest", "train", "evaluate", "forecast", "data",
                                 "report", "batch", "tune", "study"}
    assert set(cli.commands["data"].commands) == {"download", "list", "check"}
    for words, _ in commands():
        name = " ".join(words)
        assert f"### `marketcast {name}`" in README
        main([*words, "--help"])  # returns normally: exit code 0
        assert f"Usage: marketcast {name}" in capsys.readouterr().out


def test_documented_flags_exist():
    options = {opt for _, command in commands() for param in command.params
               for opt in param.opts}
    documented = set(re.findall(r"`(--[a-z-]+)`", README))
    assert documented - options - {"--help"} == set()


def test_every_flag_of_the_searches_is_documented():
    documented = set(re.findall(r"`(--[a-z-]+)`", README))
    for name in ("tune", "study"):
        flags = {opt for param in cli.commands[name].params for opt in param.opts
                 if opt.startswith("--")}
        assert flags - documented - {"--source"} == set(), name  # --source: old --data


def test_quick_start_is_two_make_commands():
    block = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["make demo", "make test"]
