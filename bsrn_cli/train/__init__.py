"""Training: data sampling, the optimisation loop, checkpoints and export."""

from importlib import resources


def preset_names() -> list[str]:
    """The shipped training presets (``presets/*.toml``); here, not in ``config``, because the
    command line names them in its help without importing the trainer (which needs torch)."""
    folder = resources.files("bsrn_cli.train") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))
