"""`bsrn models`: list, download, verify and export the pretrained weights (docs/weights.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from bsrn_cli.cli.common import console, report_error
from bsrn_cli.errors import BsrnError

models_app = typer.Typer(name="models", no_args_is_help=True,
                         help="Pretrained weights: list, download from the Hub, verify, export for the Hub.")

NamesArgument = Annotated[list[str] | None, typer.Argument(
    help="Registered model names or patterns such as 'bsrn-fast-*' (default: all).", show_default=False)]


def _entries(patterns: list[str] | None):
    from bsrn_cli.pretrained.registry import get_entry, list_models

    if not patterns:
        return list_models()
    entries = []
    for pattern in patterns:
        matched = list_models(pattern) if any(c in pattern for c in "*?[") else [get_entry(pattern)]
        if not matched:
            raise BsrnError(f"no registered model matches {pattern!r}")
        entries += [e for e in matched if e not in entries]
    return entries


def _size(n: int) -> str:
    # truncated, never rounded up
    return f"{int(n / 1e5) / 10:.1f} MB" if n >= 100_000 else f"{int(n / 1e2) / 10:.1f} kB"


@models_app.command("list")
def list_command() -> None:
    """The registered models: scale, size, measured Set5 PSNR, where the file is, and whether it verifies.

    Example: bsrn models list
    """
    from bsrn_cli.pretrained import hub

    table = Table()
    for header in ("name", "scale", "size", "Set5 PSNR", "where", "verified", "revision"):
        table.add_column(header, no_wrap=header in ("name", "where", "verified"))
    entries = _entries(None)
    for entry in entries:
        copies = hub.local_copies(entry)
        problems = [copy.problem(entry) for copy in copies]
        where = ", ".join(copy.kind for copy in copies) or "not downloaded"
        verified = "-" if not copies else ("yes" if not any(problems) else "MISMATCH")
        psnr = entry.quality.get("Set5_psnr")
        table.add_row(entry.name, f"x{entry.scale}", _size(entry.size), "-" if psnr is None else f"{psnr} dB",
                      where, verified, entry.revision)
    console.print(table)
    repos = ", ".join(f"{hub.endpoint()}/{repo}" for repo in sorted({entry.hub_repo for entry in entries}))
    console.print(f"Hub: {repos}   cache: {hub.cache_root()}"
                  + ("   (offline mode)" if hub.offline_mode() else ""), markup=False, highlight=False)


@models_app.command("download")
def download_command(
    names: Annotated[list[str], typer.Argument(help="Registered model names or patterns ('bsrn-fast-*').")],
    force: Annotated[bool, typer.Option("--force", help="Download again even when the cache holds a good copy.")]
    = False,
) -> None:
    """Fetch models from the Hub at their pinned revision into the user cache, verified by sha256.

    Example: bsrn models download bsrn-fast-x4
    """
    from bsrn_cli.pretrained import hub

    failed = 0
    for entry in _entries(names):
        try:
            path = hub.download(entry, force=force)
        except BsrnError as exc:
            failed += 1
            bundled = [c for c in hub.local_copies(entry) if c.kind == "bundled" and c.problem(entry) is None]
            report_error(BsrnError(f"{exc}; the bundled copy stays in use" if bundled else str(exc)))
            continue
        console.print(f"{entry.name}: verified, cached at {path}", markup=False, highlight=False)
    if failed:
        raise typer.Exit(1)


@models_app.command("verify")
def verify_command(names: NamesArgument = None) -> None:
    """Check every local copy (bundled and cached) against the registry's size and sha256.

    Exits with status 1 if any copy does not match, or a model named on the command line has no copy.
    Examples: bsrn models verify | bsrn models verify bsrn-fast-x4
    """
    from bsrn_cli.pretrained import hub

    table = Table("name", "where", "status", "path")
    problems: list[str] = []
    for entry in _entries(names):
        copies = hub.local_copies(entry)
        if not copies:
            table.add_row(entry.name, "-", "not downloaded", str(hub.cached_path(entry)))
            if names:
                problems.append(f"{entry.name}: no local copy to verify (run `bsrn models download {entry.name}`)")
        for copy in copies:
            problem = copy.problem(entry)
            table.add_row(entry.name, copy.kind, "ok" if problem is None else "MISMATCH", str(copy.path))
            if problem is not None:
                hint = ("reinstall bsrn" if copy.kind == "bundled"
                        else f"run `bsrn models download {entry.name} --force`")
                problems.append(f"{problem} ({hint})")
    console.print(table)
    for problem in problems:
        report_error(BsrnError(problem))
    if problems:
        raise typer.Exit(1)


@models_app.command("export-hub")
def export_hub_command(
    folder: Annotated[Path, typer.Argument(help="New (or empty) folder to write.")],
    models: Annotated[list[str] | None, typer.Option(
        "--model", "-m", help="Registered name or .safetensors path; repeat for several (default: all registered).",
        show_default=False)] = None,
    repo_id: Annotated[str | None, typer.Option(help="Hub repo id for the model card title.")] = None,
    licence: Annotated[str | None, typer.Option(
        "--licence", help="Licence identifier for the card (default: the registry's, else mit).")] = None,
) -> None:
    """Write a Hub-ready folder: the weights files, config.json and a model card with the measured results.

    Example: bsrn models export-hub hub-out/ && hf upload bsrn-project/bsrn-fast hub-out/ .
    """
    from bsrn_cli.pretrained.loader import looks_like_path, resolve_entry
    from bsrn_cli.pretrained.publish import ExportItem, export_hub
    from bsrn_cli.pretrained.registry import HUB_REPO, get_entry

    items = []
    for spec in models or [e.name for e in _entries(None)]:
        if looks_like_path(spec):
            path = Path(spec)
            if path.suffix != ".safetensors":
                raise BsrnError(f"{path}: only .safetensors files are exported")
            items.append(ExportItem(path.stem, path, path.name, None))
        else:
            entry = get_entry(spec)
            path, _ = resolve_entry(entry)
            items.append(ExportItem(entry.name, path, entry.filename, entry.licence))
    exported = export_hub(folder, items, repo_id=repo_id or HUB_REPO, licence=licence)
    console.print(f"{folder}: Hub-ready (file, bytes, sha256)", markup=False, highlight=False)
    for file in exported:  # plain lines: these are the values a release pins in the registry
        console.print(f"  {file.filename}  {file.size}  {file.sha256}", markup=False, highlight=False, soft_wrap=True)
    console.print("next: hf upload <repo> <folder> . ; hf repos tag create <repo> vX.Y.Z ; "
                  "then pin revision, sha256 and size in bsrn_cli/pretrained/registry.py (docs/weights.md)",
                  markup=False, highlight=False)
