"""Job configurations: one validated dataclass per job, read from a dict with unknown keys
refused, and written next to the job's outputs so a result says what made it.

A job (``aetk fit``, ``aetk evaluate``, ``aetk md``, ``aetk dft``) takes one config object
instead of a long list of loose arguments; the CLI only builds it from its flags. Subclasses
are frozen dataclasses that check their values in ``__post_init__``; fields that are
themselves configs (a descriptor spec, training settings, DFT settings) are converted by
their own ``to_dict``/``from_dict`` where they have one, else field by field.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

from toolkit.errors import AetkError

C = TypeVar("C", bound="JobConfig")


class ConfigError(AetkError, ValueError):
    """A job configuration has unknown keys, lacks a required one, or holds a bad value."""


def _plain(value: Any) -> Any:
    """JSON-ready form of a config value."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _dataclass_type(annotation: Any) -> type | None:
    """The dataclass in an annotation such as ``Spec``, ``Spec | None``; else None."""
    candidates = typing.get_args(annotation) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and dataclasses.is_dataclass(candidate):
            return candidate
    return None


def build(cls: type[C], data: dict, source: str = "config") -> C:
    """An instance of the dataclass ``cls`` from a plain dict; unknown keys and missing
    required keys are refused by name (recursively for nested configs)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a table of keys, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; known: {sorted(fields)}")
    required = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                and f.default_factory is dataclasses.MISSING]
    missing = [n for n in required if n not in data]
    if missing:
        raise ConfigError(f"{source}: missing keys {missing}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in data.items():
        nested = _dataclass_type(hints.get(name))
        where = f"{source}.{name}"
        if nested is not None and isinstance(value, dict):
            if hasattr(nested, "from_dict"):
                try:
                    value = nested.from_dict(value, source=where)
                except TypeError:  # a from_dict without a source argument
                    value = nested.from_dict(value)
            else:
                value = build(nested, value, where)
        elif isinstance(value, list) and typing.get_origin(hints.get(name)) is tuple:
            value = tuple(value)
        values[name] = value
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def differences(stored: dict, current: dict, ignore: tuple[str, ...] = (),
                prefix: str = "") -> list[str]:
    """Every key path where two nested config dicts differ, with both values, e.g.
    ``training.max_iterations: 15 -> 20``; top-level keys in ``ignore`` are skipped. Generic,
    so a key added to a config later is compared without being named anywhere."""
    found = []
    for key in sorted(set(stored) | set(current)):
        if key in ignore:
            continue
        path = f"{prefix}{key}"
        if key not in stored or key not in current:
            found.append(f"{path}: {stored.get(key, '(not set)')!r} -> "
                         f"{current.get(key, '(not set)')!r}")
        elif isinstance(stored[key], dict) and isinstance(current[key], dict):
            found += differences(stored[key], current[key], prefix=f"{path}.")
        elif stored[key] != current[key]:
            found.append(f"{path}: {stored[key]!r} -> {current[key]!r}")
    return found


class JobConfig:
    """Mixin for a job's frozen dataclass config: ``to_dict``, ``from_dict``, ``write``."""

    def to_dict(self) -> dict:
        return {f.name: _plain(getattr(self, f.name))
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: dict, source: str = "config") -> C:
        return build(cls, data, source)

    def replace(self: C, **changes: Any) -> C:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def write(self, path: str | Path) -> Path:
        """Write the config as JSON, atomically, e.g. next to the job's outputs."""
        from toolkit.data import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")
        return Path(path)

    @classmethod
    def read(cls: type[C], path: str | Path) -> C:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: unreadable config ({exc})") from None
        return cls.from_dict(data, source=str(path))
