"""Command-line mistakes as one line in bsrn's words: ``error: <option>: <what>; <hint>``.

Typer/click report unknown options, missing arguments and unparsable values as exceptions
whose text names click's classes; :func:`usage_line` turns each into the line bsrn prints
(exit status 2), with a "did you mean" for options other upscalers use and for typos.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

try:  # recent Typer (0.29 here) carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # older Typer uses click itself
    from click import exceptions as click_errors

# Options of Real-ESRGAN's inference_realesrgan.py (and similar tools) -> ours (docs/usage.md).
HABITS = {"-n": "-m/--model", "--model_name": "-m/--model", "--model-name": "-m/--model",
          "-t": "--tile", "--ext": "--format", "--outscale": "-s/--scale", "--tile_pad": "--tile-overlap",
          "--tile-pad": "--tile-overlap", "--gpu-id": "--device", "--gpu_id": "--device",
          "-g": "--device", "--model_path": "-m/--model", "--model-path": "-m/--model"}


def _command(ctx) -> str:
    """``bsrn upscale`` for the upscale command's context, ``bsrn`` for the root."""
    names = []
    while ctx is not None and ctx.parent is not None:
        names.insert(0, ctx.info_name)
        ctx = ctx.parent
    return " ".join(["bsrn", *names])


def _label(param) -> str:
    """-m/--model for an option, INPUTS for an argument."""
    if getattr(param, "param_type_name", "") == "argument":
        return (param.name or "argument").upper()
    return "/".join(sorted(param.opts, key=len))


def _given(opts: list[str], argv: list[str]) -> str | None:
    """The value given to one of ``opts`` on the command line (the last one), if any."""
    found = None
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                found = argv[i + 1]
            elif opt.startswith("--") and arg.startswith(opt + "="):
                found = arg[len(opt) + 1:]
    return found


def suggest(name: str, ctx) -> str | None:
    """The option meant by an unknown ``name``: a known habit, else the closest spelling."""
    if name in HABITS:
        return HABITS[name]
    options = {opt: _label(p) for p in (ctx.command.get_params(ctx) if ctx else [])
               if getattr(p, "param_type_name", "") == "option" for opt in [*p.opts, *p.secondary_opts]}
    close = difflib.get_close_matches(name, list(options), n=1, cutoff=0.6)
    return options[close[0]] if close else None


def usage_line(exc: click_errors.UsageError, argv: list[str] | None = None, commands: tuple[str, ...] = ()) -> str:
    """The one line printed for a command-line mistake (without the ``error: `` prefix).

    ``commands``: the app's command names, to name the command when click gives no context.
    """
    argv = sys.argv[1:] if argv is None else argv
    ctx = exc.ctx
    named = next((a for a in argv if a in commands), None) if ctx is None else None
    help_hint = f"see bsrn {named} --help" if named else f"see {_command(ctx)} --help"
    if isinstance(exc, click_errors.NoSuchOption):
        meant = suggest(exc.option_name, ctx)
        return f"{exc.option_name}: no such option; " + (f"did you mean {meant}?" if meant else help_hint)
    if isinstance(exc, click_errors.MissingParameter):
        label = _label(exc.param) if exc.param is not None else "argument"
        return f"{label}: missing; {help_hint}"
    if isinstance(exc, click_errors.BadParameter):
        if exc.param is None:
            return f"{exc.format_message()}; {help_hint}"
        value = _given(list(exc.param.opts), argv)
        what = exc.message.split(",")[0]
        what = {"Input should be a valid integer": "not a whole number",
                "Input should be a valid number": "not a number"}.get(what, what[:1].lower() + what[1:])
        return f"{_label(exc.param)}: " + (f"{value!r} is {what}" if value is not None else what) + f"; {help_hint}"
    if isinstance(exc, click_errors.BadOptionUsage) and exc.message.endswith("requires an argument."):
        return f"{exc.option_name}: needs a value; {help_hint}"
    message = exc.format_message().rstrip(".")
    if message.startswith("No such command"):
        name = message.split("'")[1] if "'" in message else message
        commands = list(getattr(ctx.command, "commands", {})) if ctx is not None else []
        close = difflib.get_close_matches(name, commands, n=1, cutoff=0.6)
        if close:
            return f"{name}: no such command; did you mean {_command(ctx)} {close[0]}?"
        if Path(name).suffix or Path(name).exists():
            return f"{name}: no such command; did you mean bsrn upscale {name}?"
        return f"{name}: no such command; {help_hint}"
    return f"{message[:1].lower() + message[1:]}; {help_hint}"


def tidy_help() -> None:
    """Help without Typer's type placeholders where they mislead: none on flags (``--debug``,
    ``--help``), ``<path>`` rather than ``<list[Path]>`` after a repeated argument."""
    from typer.core import TyperArgument, TyperOption

    option_type, argument_type = TyperOption.display_type_rich, TyperArgument.display_type_rich

    def element(shown: str | None) -> str | None:
        if shown and shown.startswith("<list[") and shown.endswith("]>"):
            return f"<{shown[6:-2].lower()}>"
        return shown

    def option_display(self, ctx) -> str | None:
        return None if self.is_flag else element(option_type(self, ctx))

    def argument_display(self, ctx) -> str | None:
        return element(argument_type(self, ctx))

    TyperOption.display_type_rich, TyperArgument.display_type_rich = option_display, argument_display
