"""Seed-compatible entry points.

``python -m evalscope.run --model NAME --datasets arc --limit 10 [--api-url URL]`` takes the same options as
``evalscope eval``; ``run_task(task_cfg)`` accepts a dict, a YAML / JSON file path, or an
:class:`~evalscope.eval.config.EvalConfig` and returns ``{model: {benchmark: report}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _arena_task(task_cfg: Any) -> dict[str, Any] | None:
    """The options of an arena task (``eval_type: arena``, as a dict or a YAML / JSON file), else None."""
    if isinstance(task_cfg, str | Path) and str(task_cfg).lower().endswith((".yaml", ".yml", ".json")):
        from evalscope.arena.config import load_arena_file

        data: Any = load_arena_file(str(task_cfg))
    else:
        data = task_cfg
    if isinstance(data, dict) and str(data.get("eval_type", "")).lower() == "arena":
        return dict(data)
    return None


def run_task(task_cfg: Any) -> Any:
    """Run one evaluation task; return the reports (model -> benchmark -> report dict).

    An arena task (``{"eval_type": "arena", ...}``) runs ``evalscope arena`` and returns its report dict.
    """
    arena = _arena_task(task_cfg)
    if arena is not None:
        from evalscope.arena.runner import run_arena

        return run_arena(arena).report
    from evalscope.eval.config import EvalConfig, load_task_config
    from evalscope.eval.runner import run_eval

    cfg: EvalConfig = load_task_config(task_cfg if not isinstance(task_cfg, Path) else str(task_cfg))
    return run_eval(cfg).reports


def main() -> None:
    """``python -m evalscope.run``: the ``evalscope eval`` command under another name."""
    from evalscope.cli.eval import eval_cmd

    eval_cmd.main(prog_name="python -m evalscope.run")


if __name__ == "__main__":
    main()
