"""``from evalscope.config import TaskConfig``: the original EvalScope's Python entry, kept working.

``TaskConfig(**keys)`` takes upstream / seed keys (``eval_type``, ``generation_config`` with
``max_new_tokens``, ``template_type``...), translates them exactly as ``run_task(dict)`` and YAML files do
(:mod:`evalscope.compat`) and returns the validated :class:`~evalscope.eval.config.EvalConfig`, so that
``run_task(TaskConfig(...))`` works.
"""

from __future__ import annotations

from typing import Any

from evalscope.eval.config import EvalConfig, build_config, normalize_task_dict


def TaskConfig(**keys: Any) -> EvalConfig:  # upstream spelled it as a class
    """Validate upstream-style keys into an :class:`EvalConfig` (ConfigError, exit 2, on a bad value)."""
    return build_config(normalize_task_dict(keys))


__all__ = ["EvalConfig", "TaskConfig"]
