"""Named plugin registries that fail loudly.

Datasets, API protocols and benchmarks are looked up by the name a user types. Duplicates are an error, an
unknown name answers with the closest matches and the full list, entries can be lazy ``"module:attr"``
strings so that ``evalscope --help`` never imports them, and third parties add entries via entry points.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from evalscope.errors import ConfigError, UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object map with lazy entries, entry-point discovery and did-you-mean errors."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._group = entry_point_group
        self._items: dict[str, T | str] = {}
        self._eps_loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")``."""

        def deco(obj: T) -> T:
            self.add(name, obj)
            return obj

        return deco

    def add(self, name: str, obj: T | str) -> None:
        """Add an object, or a lazy ``"package.module:attr"`` reference; a duplicate name is an error."""
        existing = self._items.get(name)
        # A lazy reference being replaced by the object it names (module import ran the decorator) is fine.
        replaces_lazy = isinstance(existing, str) and not isinstance(obj, str)
        if existing is not None and existing is not obj and not replaces_lazy:
            raise ConfigError(f"duplicate {self.kind} name {name!r}", "each plugin needs a unique name")
        self._items[name] = obj

    def _load_entry_points(self) -> None:
        if self._eps_loaded or self._group is None:
            return
        self._eps_loaded = True
        for ep in entry_points(group=self._group):
            if ep.name not in self._items:
                self._items[ep.name] = ep.value

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load_entry_points()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        if name in self._items:
            return True  # built-ins win over entry points anyway: no scan of every installed package (~40 ms)
        self._load_entry_points()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> T:
        """Resolve a name, importing lazy entries; unknown names raise :class:`UnknownNameError`."""
        if name not in self._items:
            self._load_entry_points()
        if name not in self._items:
            raise UnknownNameError(self.unknown_message(name))
        item = self._items[name]
        if isinstance(item, str):
            mod_name, _, attr = item.partition(":")
            module = importlib.import_module(mod_name)
            resolved: T = getattr(module, attr) if attr else module  # type: ignore[assignment]
            self._items[name] = resolved
            return resolved
        return item

    def unknown_message(self, name: str) -> str:
        """``Unknown dataset 'sharegtp'. Did you mean: sharegpt? Available: ...``."""
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        msg = f"Unknown {self.kind} {name!r}."
        if close:
            msg += f" Did you mean: {', '.join(close)}?"
        return msg + f" Available: {', '.join(names)}"
