"""What a registry of extensions is, and how plugins add entries to them.

Each kind of extension the search knows by name (samplers: :mod:`fcnn_opt.search.samplers`,
pruners: :mod:`fcnn_opt.search.pruners`, objectives: :mod:`fcnn_opt.search.metrics`, export
formats: :mod:`fcnn_opt.search.export`; storages below, in :mod:`fcnn_opt.store.storages`)
has one :class:`Registry`: its entries say the name, how it is built, which pip extra it
needs and what it can do. The command line's choices, the error messages and the docs read
the registry, so adding one is one entry.

A plugin is a module that registers entries when imported::

    # my_plugin.py
    import optuna
    from fcnn_opt.search.samplers import register_sampler

    register_sampler("sobol", lambda seed, spec, concurrent: optuna.samplers.QMCSampler(seed=seed))

It is loaded, once per process and before a registry is first read, from

- ``FCNN_OPT_PLUGINS``: module names separated by commas (``FCNN_OPT_PLUGINS=my_plugin``),
  which worker processes inherit with the rest of the environment, or
- the entry point group ``fcnn_opt.plugins`` of any installed package (in its
  ``pyproject.toml``: ``[project.entry-points."fcnn_opt.plugins"] mine = "my_plugin"``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Generic, Protocol, TypeVar

PLUGINS_ENV = "FCNN_OPT_PLUGINS"
ENTRY_POINT_GROUP = "fcnn_opt.plugins"


class PluginError(ImportError):
    """A plugin named in ``FCNN_OPT_PLUGINS`` or the entry points that cannot be loaded."""


class RegistryError(ValueError):
    """A name no entry of a registry has, or an entry registered twice; the message says which."""


class Entry(Protocol):
    """What every registry entry has: the ``name`` the study files and the command line use."""

    name: str


E = TypeVar("E", bound=Entry)


_plugins_loaded: list[str] = []  # the plugin modules this process imported
_loading = False
_loaded = False


def load_plugins() -> list[str]:
    """Import every plugin module (``FCNN_OPT_PLUGINS`` first, then the ``fcnn_opt.plugins``
    entry points), once per process; returns the names of the modules loaded so far."""
    global _loading, _loaded
    if _loaded or _loading:
        return list(_plugins_loaded)
    _loading = True
    try:
        names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
        for name in names:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                raise PluginError(f"${PLUGINS_ENV} names plugin {name!r}, which cannot be imported: {exc}") from exc
            _plugins_loaded.append(name)
        for point in entry_points(group=ENTRY_POINT_GROUP):
            try:
                point.load()
            except ImportError as exc:
                raise PluginError(f"Entry point {point.name!r} ({point.value}) of group {ENTRY_POINT_GROUP!r} "
                                  f"cannot be loaded: {exc}") from exc
            _plugins_loaded.append(point.value)
        _loaded = True
    finally:
        _loading = False
    return list(_plugins_loaded)


class Registry(Generic[E]):
    """The entries of one kind of extension, by name, in the order they were registered.

    ``kind`` names one entry in messages ("sampler"); ``plural`` defaults to kind + "s".
    Reading a registry (:meth:`get`, :meth:`names`, iterating) loads the plugins first.
    """

    def __init__(self, kind: str, plural: str | None = None):
        self.kind = kind
        self.plural = plural or f"{kind}s"
        self._entries: dict[str, E] = {}

    def register(self, entry: E, *, replace: bool = False) -> E:
        """Add ``entry`` under its name and return it; a name already taken is an error
        unless ``replace`` is true."""
        if not isinstance(entry.name, str) or not entry.name:
            raise RegistryError(f"A {self.kind} needs a non-empty name, got {entry.name!r}.")
        if entry.name in self._entries and not replace:
            raise RegistryError(f"A {self.kind} named {entry.name!r} is registered already; "
                                "pass replace=True to replace it.")
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> E:
        """Remove the entry ``name`` and return it (a plugin's test cleaning up)."""
        return self._entries.pop(self.get(name).name)

    def get(self, name: str) -> E:
        """The entry ``name``; an unknown name raises :class:`RegistryError` listing the valid ones."""
        load_plugins()
        if name not in self._entries:
            raise RegistryError(self.unknown(name))
        return self._entries[name]

    def names(self, **capabilities) -> tuple[str, ...]:
        """The registered names, in order; with ``capabilities`` (e.g. ``multi_objective=True``)
        only those of the entries whose attributes have these values."""
        load_plugins()
        return tuple(name for name, entry in self._entries.items()
                     if all(getattr(entry, key) == value for key, value in capabilities.items()))

    def unknown(self, name: str) -> str:
        """The message for a name no entry has: "Unknown sampler 'x'. Valid samplers: a, b."."""
        return f"Unknown {self.kind} {name!r}. Valid {self.plural}: {', '.join(self.names())}."

    def __contains__(self, name: object) -> bool:
        return name in self.names()

    def __iter__(self) -> Iterator[E]:
        load_plugins()
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self.names())
