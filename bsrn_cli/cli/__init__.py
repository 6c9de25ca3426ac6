"""The `bsrn` command line: one module per command, registered on one Typer app."""

from __future__ import annotations

import gc

# Start-up is mostly imports (Typer and its pydantic, rich, numpy), which allocate many objects
# and trigger the cyclic collector hundreds of times to find no cycles: collecting every 50,000
# allocations instead of 700 saves about 20 ms of each run (scripts/startup_time.py); cycles
# are still collected, later.
gc.set_threshold(50_000, 50, 50)

import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from typing import Annotated  # noqa: E402

import typer  # noqa: E402

from bsrn_cli import __version__
from bsrn_cli.cli import coerce
from bsrn_cli.cli.common import Settings, err_console, report_error
from bsrn_cli.cli.usage import click_errors, tidy_help, usage_line
from bsrn_cli.errors import UsageProblem

INTERRUPTED = 130  # exit status after Ctrl-C, as shells report SIGINT
TERMINATED = 143  # exit status after SIGTERM (128 + 15)
USAGE = 2  # exit status of a command-line mistake, as click and most tools use

app = typer.Typer(name="bsrn", no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Upscale images with a binarized super-resolution network (BSRN).")


def _version(value: bool) -> None:
    if value:
        print(f"bsrn {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version.")] = False,
) -> None:
    Settings.debug = debug or os.environ.get("BSRN_DEBUG") == "1"


# name -> (module, attribute, is a group of commands); a module is imported only when its
# command is registered: a run registers only the command it names (see main), which saves
# importing and building the others (about 50 ms, docs/performance.md "Start-up").
COMMANDS = {
    "upscale": ("bsrn_cli.cli.upscale", "upscale_command", False),
    "eval": ("bsrn_cli.cli.eval", "eval_command", False),
    "info": ("bsrn_cli.cli.info", "info_command", False),
    "train": ("bsrn_cli.cli.train", "train_command", False),
    "export": ("bsrn_cli.cli.train", "export_command", False),
    "convert": ("bsrn_cli.cli.convert", "convert_command", False),
    "degrade": ("bsrn_cli.cli.degrade", "degrade_command", False),
    "bench": ("bsrn_cli.cli.bench", "bench_command", False),
    "models": ("bsrn_cli.cli.models", "models_app", True),
}
_registered: set[str] = set()


def register(name: str | None = None) -> typer.Typer:
    """Register the command ``name`` on the app, or every command (None); the app."""
    import importlib

    for command in COMMANDS if name is None else [name]:
        if command in _registered:
            continue
        module, attribute, group = COMMANDS[command]
        target = getattr(importlib.import_module(module), attribute)
        if group:
            app.add_typer(target, name=command)
        else:
            app.command(command)(target)
        _registered.add(command)
    return app


def _named_command(argv: list[str]) -> str | None:
    """The command named by ``argv`` (the first word that is not one of the root's options),
    or None where it names none of ours (help, a typo: then every command is registered)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


tidy_help()
coerce.install()


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that it unwinds as after Ctrl-C: temporary
    files are removed and the run's state (training) is saved."""


def _on_sigterm(signum, frame) -> None:
    _on_sigterm.received = True
    raise _Terminated


_on_sigterm.received = False


def main() -> None:
    """Run the app; usage mistakes exit 2 with one line, runtime failures 1, Ctrl-C 130, SIGTERM 143."""
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:  # training installs its own handler later
        signal.signal(signal.SIGTERM, _on_sigterm)
    register(_named_command(sys.argv[1:]))
    try:
        status = app(standalone_mode=False)
        if status == INTERRUPTED:  # Typer returns 130 for Ctrl-C (no command of ours exits so)
            err_console.print("terminated" if _on_sigterm.received else "aborted")
            sys.exit(TERMINATED if _on_sigterm.received else INTERRUPTED)
        if isinstance(status, int) and status:
            sys.exit(status)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("terminated" if _on_sigterm.received else "aborted")
        sys.exit(TERMINATED if _on_sigterm.received else INTERRUPTED)
    except click_errors.NoArgsIsHelpError:  # bare `bsrn` or `bsrn models`: the help was printed
        sys.exit(USAGE)
    except click_errors.UsageError as exc:
        commands = tuple(c.name for c in app.registered_commands) + tuple(g.name for g in app.registered_groups)
        err_console.print(f"error: {usage_line(exc, commands=commands)}", markup=False)
        sys.exit(USAGE)
    except UsageProblem as exc:
        report_error(exc)
        sys.exit(USAGE)
    except Exception as exc:
        report_error(exc)
        sys.exit(1)
