"""Prompt sources for perf, registered by name (third-party ones through the ``evalscope.datasets`` entry point).

A dataset class is built with the run's :class:`PerfConfig` and tokenizer, validates its input up front (before
any network I/O) and then yields :class:`Prompt` objects lazily and endlessly (files are cycled).
"""

from __future__ import annotations

from evalscope.perf.datasets.base import DATASETS, PerfDataset, Prompt

DATASETS.add("random", "evalscope.perf.datasets.synthetic:RandomDataset")
DATASETS.add("openqa", "evalscope.perf.datasets.files:OpenQADataset")
DATASETS.add("longalpaca", "evalscope.perf.datasets.files:LongAlpacaDataset")
DATASETS.add("line_by_line", "evalscope.perf.datasets.files:LineByLineDataset")
DATASETS.add("sharegpt", "evalscope.perf.datasets.files:ShareGPTDataset")
DATASETS.add("custom", "evalscope.perf.datasets.files:CustomDataset")
DATASETS.add("prompt", "evalscope.perf.datasets.ladder:FixedPromptDataset")
DATASETS.add("speed_benchmark", "evalscope.perf.datasets.ladder:SpeedBenchmarkDataset")
DATASETS.add("speed_benchmark_long", "evalscope.perf.datasets.ladder:SpeedBenchmarkLongDataset")

__all__ = ["DATASETS", "PerfDataset", "Prompt"]
