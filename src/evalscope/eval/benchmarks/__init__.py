"""Benchmark modules. Importing the package registers the built-in benchmarks lazily (``name -> module:class``)
so that listing names or a did-you-mean never imports every module; ``BENCHMARKS.get(name)`` imports one.

Owns the contract (``base.py``: ``Sample``, ``ScoreResult``, ``Benchmark`` and its versioned parts ``Loader``,
``PromptTemplate``, ``Scorer`` / ``JudgeScorer``), shared readers and prompt families (``_common.py`` for
multiple choice, ``_math_base.py`` for math) and one module per benchmark.

May import: ``eval.scoring``, ``eval.sandbox`` (code benchmarks), ``eval.models.base`` (types only, for judge
scorers), ``evalscope.errors`` / ``registry``. Never the runner, perf or cli.
"""

from __future__ import annotations

from evalscope.eval.benchmarks.base import BENCHMARKS

_BUILTIN = {
    "mmlu": "mmlu:MMLU",
    "cmmlu": "cmmlu:CMMLU",
    "ceval": "ceval:CEval",
    "gsm8k": "gsm8k:GSM8K",
    "arc": "arc:ARC",
    "hellaswag": "hellaswag:HellaSwag",
    "truthful_qa": "truthful_qa:TruthfulQA",
    "competition_math": "competition_math:CompetitionMath",
    "math_500": "math_500:Math500",
    "gpqa": "gpqa:GPQA",
    "bbh": "bbh:BBH",
    "general_mcq": "general:GeneralMCQ",
    "general_qa": "general:GeneralQA",
    "humaneval": "humaneval:HumanEval",
    "mbpp": "mbpp:MBPP",
    "image_mcq": "image_mcq:ImageMCQ",
}
for _name, _ref in _BUILTIN.items():
    if _name not in BENCHMARKS:
        BENCHMARKS.add(_name, f"{__name__}.{_ref}")
