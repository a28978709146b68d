"""Models the eval runner (and a judge scorer) can ask, all behind the ``Model`` protocol in ``base.py``:
``ApiModel`` (an OpenAI-compatible endpoint through the engine client, with retries, adaptive concurrency and
the response cache) and ``BuiltinSimModel`` (the simulator started as a subprocess when no ``--api-url`` is
given). Local-weights and managed-server models plug in here as further modules.

May import: ``evalscope.engine``, ``evalscope.errors``, ``eval.cache``; ``evalscope.sim`` (builtin only).
Never the runner, benchmarks, perf or cli (checked by tests/unit/core/test_import_graph.py).
"""
