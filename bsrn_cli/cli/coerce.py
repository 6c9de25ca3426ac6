"""Command-line values turned into Python values without pydantic.

Recent Typer (0.2x) converts every option value through a pydantic ``TypeAdapter`` that it
builds when the option is first parsed. Importing pydantic and building the first adapter
costs about 130 ms of every ``bsrn`` run on the project's machine, a third of a small
upscale's wall time (docs/performance.md, "Start-up"). Every option of bsrn has a plain
type: ``str``, ``int``, ``float``, ``Path`` or a list of one of them, with no pydantic
constraint (ranges are checked by the commands themselves). For those, :func:`install`
gives Typer a conversion of its own that returns what Typer's would (same values, same
errors: tests/cli/test_coerce.py compares both on a corpus of values); anything else still
goes through Typer's own.

Typer keeps this conversion behind a private method (``_TyperParameter.get_runtime_param``);
where it is absent (older Typer converts with click's types, without pydantic) nothing is
installed and nothing changes.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, get_args, get_origin

PLAIN = (str, int, float, bool, Path)
_BOOLS = {**dict.fromkeys(("1", "on", "t", "true", "y", "yes"), True),
          **dict.fromkeys(("", "0", "off", "f", "false", "n", "no"), False)}
_INT_WITH_ZERO_FRACTION = re.compile(r"([+-]?[0-9](?:_?[0-9])*)\.0+")


def _parse_int(text: str) -> int:
    text = text.strip()
    if not text.isascii():  # int() would take other scripts' digits
        raise ValueError
    match = _INT_WITH_ZERO_FRACTION.fullmatch(text)
    return int(match.group(1) if match else text)


def _parse_float(text: str) -> float:
    text = text.strip()
    if not text.isascii():
        raise ValueError
    return float(text)


def _parse_bool(text: str) -> bool:
    return _BOOLS[text.strip().lower()]  # KeyError for anything else


def plain_type(descriptor) -> tuple[type, bool] | None:
    """(element type, is a list) when the parameter's values can be converted here, else None."""
    annotation, info = descriptor.annotation, descriptor.parameter_info
    listed = get_origin(annotation) is list
    if listed:
        args = get_args(annotation)
        if len(args) != 1:
            return None
        annotation = args[0]
    if annotation not in PLAIN or getattr(descriptor, "file_annotation", None) is not None:
        return None
    if info.parser is not None or getattr(info, "click_type", None) is not None:
        return None
    if annotation in (int, float) and (info.min is not None or info.max is not None):
        return None
    if annotation is str and (info.allow_dash or info.path_type is not None or info.resolve_path):
        return None  # Typer treats such a str as a path
    return annotation, listed


def install() -> bool:
    """Give Typer's parameters the plain conversion; False where this Typer has no such hook."""
    try:
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
        from typer._param_types import coerce_cli_path
        from typer.core import _TyperParameter
    except ImportError:
        return False
    original = getattr(_TyperParameter, "get_runtime_param", None)
    if original is None or getattr(original, "_bsrn_plain", False):
        return original is not None

    messages = {bool: "Input should be a valid boolean, unable to interpret input",
                int: "Input should be a valid integer, unable to parse string as an integer",
                float: "Input should be a valid number, unable to parse string as a number"}

    @dataclasses.dataclass(frozen=True)
    class PlainRuntimeParam(RuntimeParam):  # RuntimeParam is a frozen dataclass in Typer
        kind: type = str
        listed: bool = False

        def _coerce_value(self, value: Any, param, ctx) -> Any:
            if self.listed:
                items = value if isinstance(value, (list, tuple)) else [value]
                return [self._one(self.kind, item, param, ctx) for item in items]
            return self._one(self.kind, value, param, ctx)

        def _one(self, kind: type, value: Any, param, ctx) -> Any:
            if kind is str:
                return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            if kind is Path:
                path = value if isinstance(value, Path) else Path(value)
                return coerce_cli_path(path, self.parameter_info, path_type=Path, param=param, ctx=ctx)
            if isinstance(value, kind) and (kind is bool or not isinstance(value, bool)):
                return value
            try:
                return {bool: _parse_bool, int: _parse_int, float: _parse_float}[kind](str(value))
            except (KeyError, ValueError):
                raise BadParameter(messages[kind], ctx=ctx, param=param) from None

    def get_runtime_param(self):
        plain = plain_type(self.type_descriptor) if self._runtime_param is None else None
        if plain is not None:
            descriptor = self.type_descriptor
            self._runtime_param = PlainRuntimeParam(parameter_info=descriptor.parameter_info,
                                                    annotation=descriptor.annotation, kind=plain[0],
                                                    listed=plain[1])
        return original(self)

    get_runtime_param._bsrn_plain = True
    _TyperParameter.get_runtime_param = get_runtime_param
    return True
