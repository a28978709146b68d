"""``evalscope eval``: score models on benchmarks.

Owns the eval run: config (``config.py``), the runner (``runner.py``: lazily produced requests, at most
``eval_batch_size`` in flight, journal, resume, reports), the per-benchmark journal and response cache, reports,
and the dataset hub. Sub-packages: ``models`` (the :class:`~evalscope.eval.models.base.Model` protocol and its
implementations), ``benchmarks`` (loader + prompt + scorer per benchmark), ``scoring`` (answer extraction and
metrics), ``sandbox`` (running model-written code).

May import: ``evalscope.engine``, ``evalscope.errors``, ``evalscope.registry``, ``evalscope.tokens``; the
simulator only to start the built-in model (``models/builtin.py``); ``evalscope.report`` only to write the HTML
report. Never ``perf`` or ``cli`` (the CLI imports eval, not the other way round).
"""
