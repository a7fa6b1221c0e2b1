"""Share what thousands of validated sites repeat, so the inventory costs memory once per value (issue 13).

A pydantic model keeps, besides its fields, the set of the fields the input set: 216 bytes for a link, 728 for
a site, a fresh set each, though every site of an inventory sets the same few. And each site's county, area,
medium and role is its own copy of a string that a province spells a dozen ways at most. Once a site is
validated (and before anything else sees it) each of its models gets the one shared set of its kind and
content, and those strings the one interned copy: the values are equal, only their copies go.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import BaseModel

from monitor.core.model import Site, Terminal

M = TypeVar("M", bound=BaseModel)

# Fields whose values repeat across sites (a bounded vocabulary, or a few names): interned.
REPEATED = frozenset({"county", "area", "kind", "upstream", "role", "medium", "source", "auth", "method", "url",
                      "device", "if_name", "owner", "contact"})
_fields_sets: dict[frozenset[str], set[str]] = {}
_ports: dict[int, int] = {}  # one int object per port number (a province's terminals share a handful of ports)


_SLOTS = ("__pydantic_fields_set__", "__pydantic_extra__", "__pydantic_private__")


def compact(model: M) -> M:
    """Return ``model`` (freshly validated, seen by nobody yet) sharing its repeated parts; the same value.

    A site comes back as a new instance of its class holding the same values: pydantic gives each model its own
    dict (464 bytes for a site's eleven fields), where an instance that sets its attributes one by one gets a
    dict sharing its keys with every other site (288 bytes). Links and terminals keep theirs: for five fields or
    fewer the shared form is the larger one."""
    _share(model)
    if isinstance(model, Site):
        return _rehome(model)
    return model


def _rehome(model: M) -> M:
    """Return a copy of ``model`` whose attributes share their keys with the other instances of its class."""
    cls = type(model)
    new = cls.__new__(cls)
    for name, value in model.__dict__.items():  # the same order for every instance: the keys stay shared
        object.__setattr__(new, name, value)
    for name in _SLOTS:
        object.__setattr__(new, name, getattr(model, name))
    return new


def _share(model: BaseModel) -> None:
    fields = model.__pydantic_fields_set__
    key = frozenset(fields)
    # pydantic copies this set before changing it (model_copy, copy): a frozen model never changes its own.
    object.__setattr__(model, "__pydantic_fields_set__", _fields_sets.setdefault(key, set(key)))
    values = model.__dict__
    for name, value in values.items():
        if isinstance(value, str):
            if name in REPEATED or (name == "id" and isinstance(model, Terminal)):  # T1, T2: at every site
                values[name] = sys.intern(value)
        elif name == "port" and type(value) is int:
            values[name] = _ports.setdefault(value, value)
        elif isinstance(value, BaseModel):
            _share(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, BaseModel):
                    _share(item)

