"""A module imported at its first attribute access.

aiohttp costs about 0.1 s of CPU to import (its connector builds an SSL context at import time), and with the
built-in transport a perf or eval run against a server never needs it: the aiohttp transport, the simulator
and the report app import it when they run. Modules that use aiohttp only on those paths bind the name to a
:class:`LazyModule` (and import the real module under ``TYPE_CHECKING`` for the type checker).
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name``; the first attribute read imports it (``except lazy.Error`` included)."""

    __slots__ = ("_mod", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._mod: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        mod = self._mod
        if mod is None:
            mod = self._mod = importlib.import_module(self._name)
        return getattr(mod, attr)
