"""``evalscope perf``: load generation and latency/throughput measurement on the shared engine.

perf = prompt datasets + schedule + engine + aggregator + report. Entry points: :func:`run_perf` (Python API,
in :mod:`evalscope.perf.runner`) and the ``evalscope perf`` command; :class:`PerfConfig` is the one source of
options.
"""
