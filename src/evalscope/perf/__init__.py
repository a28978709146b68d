"""``evalscope perf``: load generation and latency/throughput measurement on the shared engine.

perf = prompt datasets + schedule + engine + aggregator + report. Entry points: :func:`run_perf` (Python API,
in :mod:`evalscope.perf.runner`) and the ``evalscope perf`` command; :class:`PerfConfig` is the one source of
options.

The package owns the perf lifecycle (runner -> coordinator -> pool -> dispatch cores), datasets, metric
definitions and aggregation, fidelity checks, the run directory and the terminal report. It may import
``engine``, ``errors``, ``registry`` and (lazily) ``sim`` and ``report``; never ``eval``. The module map and
who may import whom is in docs/architecture.md.
"""
