"""Models the eval runner (and a judge scorer) can ask, all behind the ``Model`` protocol in ``base.py``:
``ApiModel`` (an OpenAI-compatible endpoint through the engine client, with retries, adaptive concurrency and
the response cache), ``BuiltinSimModel`` (the simulator started as a subprocess when no ``--api-url`` is
given) and ``TransformersModel`` (local weights in-process); ``local.BUILDERS`` maps ``--backend`` names to
the models that run local weights (managed servers register there).

May import: ``evalscope.engine``, ``evalscope.errors``, ``evalscope.localmodel``, ``eval.cache``;
``evalscope.sim`` (builtin only); torch / transformers inside ``TransformersModel.start`` only.
Never the runner, benchmarks, perf or cli (checked by tests/unit/core/test_import_graph.py).
"""
