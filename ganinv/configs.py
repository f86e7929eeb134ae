"""Config dataclasses from stored dicts: the one check that every model and trainer config uses when a
checkpoint or a preset gives its values."""

from __future__ import annotations

import dataclasses
from typing import TypeVar

C = TypeVar("C")


def config_from_dict(cls: type[C], values: dict) -> C:
    """Build config dataclass ``cls`` from a dict, rejecting unknown fields with a clear error."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown}; known: {sorted(names)}")
    return cls(**values)


class FromDict:
    """Mixin of config dataclasses: ``Config.from_dict(values)`` is :func:`config_from_dict`."""

    @classmethod
    def from_dict(cls: type[C], values: dict) -> C:
        return config_from_dict(cls, values)
