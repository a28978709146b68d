"""Managed inference servers: ``--backend vllm | llama.cpp | sglang | swift`` starts the model's server for one
run on a free loopback port, waits until it answers, and stops its whole process tree afterwards.

Shared by perf and eval, which point their normal engine at the server's URL. This package is a leaf next to
the engine: it may import ``evalscope.errors`` and ``evalscope.engine.redact`` only, never a front end or the
simulator (checked by tests/unit/core/test_import_graph.py). ``guard`` runs as its own small process
(``python -m evalscope.servers.guard``), so this ``__init__`` stays free of imports.
"""

from __future__ import annotations

#: Backends whose model is served by a server process that evalscope starts and stops.
MANAGED_BACKENDS: tuple[str, ...] = ("vllm", "llama.cpp", "sglang", "swift")
#: Every ``--backend`` value: ``api`` is an endpoint (or the built-in simulator), ``transformers`` in-process.
BACKENDS: tuple[str, ...] = ("api", "transformers", *MANAGED_BACKENDS)

__all__ = ["BACKENDS", "MANAGED_BACKENDS"]
