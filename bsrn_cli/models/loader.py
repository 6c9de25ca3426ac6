"""Turn what the user typed after --model (a registry name or a path) into a ready model."""

from __future__ import annotations

from pathlib import Path

from bsrn_cli.errors import BsrnError
from bsrn_cli.models.bsrn import BSRN
from bsrn_cli.models.registry import default_model_name, get_entry
from bsrn_cli.models.weights import load_weights, sha256_file


def load_model(spec: str | None, scale: int | None = None) -> tuple[BSRN, dict, str]:
    """(model in eval mode, metadata, where it came from). Checks the scale if one is asked."""
    if spec is None:
        if scale is None:
            raise BsrnError("give a scale (-s) or a model (--model)")
        spec = default_model_name(scale)
    looks_like_path = Path(spec).suffix != "" or "/" in spec or Path(spec).exists()
    if looks_like_path:
        path = Path(spec)
        model, meta = load_weights(path)
        source = str(path)
    else:
        entry = get_entry(spec)
        path = entry.bundled_path()
        if not path.is_file():
            raise BsrnError(f"{spec}: weights file {path} is missing from this installation")
        digest = sha256_file(path)
        if digest != entry.sha256:
            raise BsrnError(f"{path}: sha256 {digest[:12]}... does not match the registry ({entry.sha256[:12]}...); "
                            "the file is damaged or was replaced")
        model, meta = load_weights(path)
        source = spec
    if scale is not None and model.scale != scale:
        raise BsrnError(f"{spec}: model is x{model.scale}, but -s {scale} was asked")
    return model, meta, source
