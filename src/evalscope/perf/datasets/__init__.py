"""Prompt sources for perf, registered by name (third-party ones through the ``evalscope.datasets`` entry point).

A dataset class is built with :class:`DatasetOptions` (the few run options it reads) and the tokenizer,
validates its input up front (before any network I/O) and then yields :class:`Prompt` objects lazily and
endlessly (files are cycled). May import: ``errors``, ``registry``, numpy; never ``perf.config`` (which
imports the registry to validate names: one direction only).
"""

from __future__ import annotations

from evalscope.perf.datasets.base import DATASETS, DatasetOptions, PerfDataset, Prompt

DATASETS.add("random", "evalscope.perf.datasets.synthetic:RandomDataset")
DATASETS.add("openqa", "evalscope.perf.datasets.files:OpenQADataset")
DATASETS.add("longalpaca", "evalscope.perf.datasets.files:LongAlpacaDataset")
DATASETS.add("line_by_line", "evalscope.perf.datasets.files:LineByLineDataset")
DATASETS.add("sharegpt", "evalscope.perf.datasets.files:ShareGPTDataset")
DATASETS.add("custom", "evalscope.perf.datasets.files:CustomDataset")
DATASETS.add("trace", "evalscope.perf.datasets.trace:TraceDataset")
DATASETS.add("prompt", "evalscope.perf.datasets.ladder:FixedPromptDataset")
DATASETS.add("speed_benchmark", "evalscope.perf.datasets.ladder:SpeedBenchmarkDataset")
DATASETS.add("speed_benchmark_long", "evalscope.perf.datasets.ladder:SpeedBenchmarkLongDataset")

__all__ = ["DATASETS", "DatasetOptions", "PerfDataset", "Prompt"]
