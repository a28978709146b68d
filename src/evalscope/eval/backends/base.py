"""The one small protocol every evaluation-backend adapter implements, and the registry that finds them.

An adapter translates our config and endpoint into its framework's, runs the framework in a subprocess with
its own log in the run directory, and converts the framework's results into our report format
(``reports/<model>/<benchmark>.json``). Adapters register by name; ``Native`` is our own runner and is not an
adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

#: ``--eval-backend`` values, as the original EvalScope spells them.
BACKEND_NAMES = ("Native", "OpenCompass", "VLMEvalKit", "ThirdParty")


@dataclass(slots=True)
class BackendRun:
    """What one backend invocation needs: the framework's settings and where to put its files."""

    eval_config: dict[str, Any]  # the user's ``eval_config``, in the original's shape
    run_dir: Path  # <work_dir>/<timestamp>; the framework's log goes to run_dir/logs/<backend>.log
    dataset_dir: Path | None = None  # local data (``--dataset-dir``); nothing downloads when it is set
    api_url: str | None = None  # OpenAI-compatible base URL (``.../v1``)
    api_key: str | None = None  # never written to logs, configs or reports
    model: str | None = None
    limit: int | None = None
    debug: bool = False


@dataclass(slots=True)
class BackendResult:
    """Scores converted to our report shape: ``reports[model][benchmark] = report dict`` plus written paths."""

    reports: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    paths: list[Path] = field(default_factory=list)
    log_path: Path | None = None


@runtime_checkable
class EvalBackend(Protocol):
    """One adapter per framework (``name`` is the ``--eval-backend`` value; ``extra`` the pip extra)."""

    name: str
    extra: str

    def available(self) -> str | None:
        """None when the framework is installed; else one line naming the ``pip install`` that fixes it."""
        ...

    def run(self, run: BackendRun) -> BackendResult:
        """Translate, run in a subprocess, convert; raise ``ConfigError``/``EndpointError`` with one line."""
        ...


_REGISTRY: dict[str, type[Any]] = {}


def register(cls: type[Any]) -> type[Any]:
    """Class decorator: make an adapter selectable by its ``name`` (case-insensitive lookup)."""
    _REGISTRY[cls.name.lower()] = cls
    return cls


def get_backend(name: str) -> EvalBackend:
    """The adapter for ``name``; imports the adapter modules lazily (the frameworks themselves stay unimported)."""
    import importlib

    for mod in ("opencompass", "vlmeval", "thirdparty"):
        try:
            importlib.import_module(f"evalscope.eval.backends.{mod}")
        except ModuleNotFoundError as exc:  # an adapter module not written yet
            if exc.name != f"evalscope.eval.backends.{mod}":
                raise
    cls = _REGISTRY.get(name.lower())
    if cls is None:
        known = ", ".join(BACKEND_NAMES)
        raise KeyError(f"unknown eval backend {name!r}; choose one of {known}")
    backend: EvalBackend = cls()
    return backend
