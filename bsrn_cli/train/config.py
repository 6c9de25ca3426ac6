"""Training configurations: TOML files (or the presets shipped in ``presets/``) plus overrides.

A file's top-level keys are :class:`TrainConfig` fields; its ``[model]`` table sets model
configuration fields (``fp_skip = true``, ``channels = 32``...). Command-line values override
the file, and ``--set KEY=VALUE`` reaches any field: a TrainConfig field by its name, a model
field by its name or as ``model.NAME``. Values are parsed as TOML values (``true``, ``3e-4``,
``[0.9, 0.99]``); anything that does not parse is taken as a string.

``base = "NAME"`` (a preset, or a TOML path relative to the file) starts from another config:
its values, with this file's replacing them key by key; the ``[model]`` tables, and two
``[degradation]`` tables, merge key by key in the same way. A recipe at another scale or on
another device then states only what differs.
"""

from __future__ import annotations

import dataclasses
import sys
from importlib import resources
from pathlib import Path

from bsrn_cli.errors import BsrnError
from bsrn_cli.train import preset_names
from bsrn_cli.train.loop import TrainConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def read_config_file(spec: str | Path, _seen: tuple[str, ...] = ()) -> dict:
    """A TOML file by path, or a shipped preset by name (``gpu-x4``), with its ``base`` applied."""
    path = Path(spec)
    if path.suffix != ".toml" and not path.exists():
        resource = resources.files("bsrn_cli.train") / "presets" / f"{spec}.toml"
        if not resource.is_file():
            raise BsrnError(f"{spec}: no such config file or preset (presets: {', '.join(preset_names())})")
        text, where, folder = resource.read_text(), f"preset {spec}", None
        key = where
    else:
        if not path.is_file():
            raise BsrnError(f"{path}: no such config file")
        text, where, folder, key = path.read_text(), str(path), path.parent, str(path.resolve())
    if key in _seen:
        raise BsrnError(f"{where}: its base leads back to it")
    try:
        values = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BsrnError(f"{where}: not valid TOML ({exc})") from exc
    model = values.pop("model", {})
    if not isinstance(model, dict):
        raise BsrnError(f"{where}: [model] must be a table")
    base = values.pop("base", None)
    unknown = set(values) - TRAIN_FIELDS
    if unknown:
        raise BsrnError(f"{where}: unknown training settings {', '.join(sorted(unknown))} "
                        "(model fields go under [model])")
    values = {**values, "model_overrides": model}
    if base is None:
        return values
    if not isinstance(base, str) or not base:
        raise BsrnError(f"{where}: base must be a preset name or a TOML file")
    if folder is not None and base.endswith(".toml") and not Path(base).is_absolute():
        base = str(folder / base)
    return merge_config(read_config_file(base, _seen + (key,)), values)


def merge_config(base: dict, values: dict) -> dict:
    """``values`` over ``base``: key by key, and inside the model and degradation tables too."""
    merged = {**base, **values, "model_overrides": {**base["model_overrides"], **values["model_overrides"]}}
    if isinstance(base.get("degradation"), dict) and isinstance(values.get("degradation"), dict):
        merged["degradation"] = {**base["degradation"], **values["degradation"]}
    return merged


def parse_value(text: str):
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_sets(values: dict, sets: list[str]) -> dict:
    """``--set KEY=VALUE`` items onto a config dict (model fields under ``model_overrides``)."""
    values = {**values, "model_overrides": dict(values.get("model_overrides", {}))}
    for item in sets:
        if "=" not in item:
            raise BsrnError(f"--set {item!r}: expected KEY=VALUE")
        key, raw = item.split("=", 1)
        key = key.strip()
        value = parse_value(raw.strip())
        if key.startswith("model."):
            values["model_overrides"][key[len("model."):]] = value
        elif key in TRAIN_FIELDS and key != "model_overrides":
            values[key] = value
        else:
            values["model_overrides"][key] = value
    return values


def make_config(config_file: str | Path | None = None, options: dict | None = None,
                sets: list[str] | None = None) -> TrainConfig:
    """File, then explicit options (None = not given), then --set items."""
    values = read_config_file(config_file) if config_file else {"model_overrides": {}}
    for key, value in (options or {}).items():
        if value is not None:
            values[key] = value
    values = apply_sets(values, sets or [])
    if not values.get("data"):
        raise BsrnError("no training data: give folders of HR images (or `data` in the config file)")
    try:
        config = TrainConfig(**values)
        config.build_model()  # configuration errors now, not after the data is loaded
    except TypeError as exc:
        raise BsrnError(f"training configuration: {exc}") from exc
    return config
