"""bsrn's own conversion of option values (bsrn_cli/cli/coerce.py) against Typer's pydantic one:
the same value or the same error for every value of a corpus, for every plain option type."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param
from typer.main import get_command

from bsrn_cli.cli import coerce, register

VALUES = ["5", " 5 ", "5.0", "5.00", "-0.0", "5.5", "5.", ".5", "1_000", "1__0", "_1", "1_0.5", "1_0.0", "+3", "-2",
          "0x10", "1e3", "1E-2", "", " ", "abc", "\u0663", "\uff11\uff12", "inf", "-inf", "infinity", "nan", "NaN",
          "1e400", "99999999999999999999999", "00012", "true", "False", "yes", "OFF", " y ", "t", "2",
          "photo.png", "dir/x y.jpg", "-", "\u00e9t\u00e9.png"]


def _probe_app() -> typer.Typer:
    probe = typer.Typer()

    @probe.command()
    def run(text: Annotated[str, typer.Option()] = "",
            whole: Annotated[int, typer.Option()] = 0,
            real: Annotated[float, typer.Option()] = 0.0,
            switch: Annotated[bool, typer.Option("--switch/--no-switch")] = False,
            choice: Annotated[bool, typer.Option()] = False,
            path: Annotated[Path | None, typer.Option()] = None,
            paths: Annotated[list[Path] | None, typer.Option()] = None,
            count: Annotated[int | None, typer.Option()] = None) -> None:
        pass

    return probe


def _convert(runtime, value, param, ctx):
    try:
        return "value", repr(runtime.coerce(value, param=param, ctx=ctx))  # repr: nan == nan
    except BadParameter as exc:
        return "error", exc.message


@pytest.fixture(scope="module")
def probe_params():
    coerce.install()
    command = get_command(_probe_app())
    ctx = command.make_context("run", [])
    return command, ctx


@pytest.mark.parametrize("name", ["text", "whole", "real", "switch", "choice", "path", "paths", "count"])
def test_plain_conversion_equals_typers_on_every_value(probe_params, name, tmp_path):
    command, ctx = probe_params
    param = next(p for p in command.params if p.name == name)
    assert coerce.plain_type(param.type_descriptor) is not None, f"{name} should be converted by bsrn"
    param._runtime_param = None
    plain = param.get_runtime_param()
    assert type(plain).__name__ == "PlainRuntimeParam"
    reference = build_runtime_param(param.type_descriptor)
    assert type(reference).__name__ == "AdapterRuntimeParam"
    (tmp_path / "exists.png").write_bytes(b"x")
    values = [*VALUES, str(tmp_path / "exists.png"), str(tmp_path)]
    for value in values:
        item = [value, value] if name == "paths" else value
        assert _convert(plain, item, param, ctx) == _convert(reference, item, param, ctx), (name, value)
    assert _convert(plain, None, param, ctx) == _convert(reference, None, param, ctx)


def test_every_option_of_bsrn_is_converted_without_pydantic():
    """A new option with a constraint Typer checks through pydantic (min=, a parser, an enum)
    would bring the ~130 ms import back to every run: keep them plain, check in the command."""
    coerce.install()
    root = get_command(register())
    commands = [root, *root.commands.values()]
    for group in list(commands):
        commands.extend(getattr(group, "commands", {}).values())
    seen = 0
    for command in commands:
        for param in command.params:
            if hasattr(param, "type_descriptor"):
                seen += 1
                assert coerce.plain_type(param.type_descriptor) is not None, (command.name, param.name)
    assert seen > 50


def test_a_constrained_option_still_goes_through_typer():
    probe = typer.Typer()

    @probe.command()
    def run(level: Annotated[int, typer.Option(min=1, max=3)] = 1) -> None:
        pass

    coerce.install()
    param = get_command(probe).params[0]
    assert coerce.plain_type(param.type_descriptor) is None
    assert type(param.get_runtime_param()).__name__ == "AdapterRuntimeParam"
