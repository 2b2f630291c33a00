"""Typed dataclasses from untyped mappings (Hydra configs, flat Flower run-configs)."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A configuration key is unknown, missing or has a value of the wrong type."""


def build_dataclass(cls: type, values: Mapping[str, Any], prefix: str = "") -> Any:
    """``cls(**values)`` with every key known and every value of its annotated type (nested
    dataclasses from mappings, lists from comma-separated strings); errors name the dotted
    key."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        keys = ", ".join(f"'{prefix}{k}'" for k in unknown)
        raise ConfigError(f"unknown config key(s) {keys}; known: {sorted(names)}")
    kwargs = {}
    for name, value in values.items():
        kwargs[name] = _coerce(f"{prefix}{name}", hints[name], value)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"invalid config section '{prefix or '<root>'}': {err}") from err


def _coerce(key: str, hint: Any, value: Any) -> Any:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"config key '{key}' must be a section, got {value!r}")
        return build_dataclass(hint, value, prefix=key + ".")
    origin = typing.get_origin(hint)
    if origin is list:
        if isinstance(value, str):
            items = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (list, tuple)):
            items = list(value)
        else:
            raise ConfigError(f"config key '{key}' must be a list or comma-separated string")
        if not all(isinstance(v, str) for v in items):
            raise ConfigError(f"config key '{key}' must hold strings, got {value!r}")
        return list(items)
    if isinstance(hint, type) and not isinstance(hint, types.GenericAlias):
        if hint is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, bool) and hint is not bool:
            raise ConfigError(f"config key '{key}' must be {hint.__name__}, got bool")
        if not isinstance(value, hint):
            raise ConfigError(
                f"config key '{key}' must be {hint.__name__}, got {type(value).__name__} {value!r}"
            )
    return value
