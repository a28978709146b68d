"""Seed-compatible entry points.

``python -m evalscope.run --model NAME --datasets arc --limit 10 [--api-url URL]`` takes the same options as
``evalscope eval``; ``run_task(task_cfg)`` accepts a dict, a YAML / JSON file path, or an
:class:`~evalscope.eval.config.EvalConfig` and returns ``{model: {benchmark: report}}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_task(task_cfg: Any) -> dict[str, dict[str, dict[str, Any]]]:
    """Run one evaluation task; return the reports (model -> benchmark -> report dict)."""
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
