"""Turn what the user typed after --model (a registry name or a path) into a ready model.

A registry name resolves, in this order, to: the bundled file, the user cache, the Hub at the
pinned revision (docs/weights.md). Whatever is found is checked against the registry's sha256
before it is read; a mismatch is refused, never skipped over.
"""

from __future__ import annotations

from pathlib import Path

from bsrn_cli.errors import BsrnError
from bsrn_cli.pretrained import hub
from bsrn_cli.pretrained.registry import PretrainedModel, default_model_name, get_entry
from bsrn_cli.pretrained.weights import Weights, open_weights


def resolve_entry(entry: PretrainedModel) -> tuple[Path, str]:
    """(verified local file, where it came from: bundled, cache or hub) for a registry entry."""
    offline = hub.offline_mode()
    for copy in hub.local_copies(entry):
        hub.check_file(copy.path, entry)
        if offline:
            hub.say(f"offline mode ({hub.OFFLINE_ENV}=1): using the {copy.kind} copy of {entry.name}")
        return copy.path, copy.kind
    if offline:
        raise BsrnError(f"{entry.name}: not bundled and not in the cache ({hub.cached_path(entry)}); offline mode "
                        f"({hub.OFFLINE_ENV}=1) forbids downloading it: unset it and run "
                        f"`bsrn models download {entry.name}`")
    return hub.download(entry), "hub"


def looks_like_path(spec: str) -> bool:
    return Path(spec).suffix != "" or "/" in spec or Path(spec).exists()


def load_model(spec: str | None, scale: int | None = None) -> tuple[Weights, dict, str]:
    """(the weights read, without torch; metadata; where they came from). Checks the scale if one
    is asked. ``Weights.network()`` builds the torch module."""
    if spec is None:
        if scale is None:
            raise BsrnError("give a scale (-s) or a model (--model)")
        spec = default_model_name(scale)
    if looks_like_path(spec):
        model = open_weights(spec)
        source = str(Path(spec))
    else:
        path, _ = resolve_entry(get_entry(spec))
        model = open_weights(path)
        source = spec
    if scale is not None and model.scale != scale:
        raise BsrnError(f"{spec}: model is x{model.scale}, but -s {scale} was asked")
    return model, model.meta, source
