"""``--resume RUN_DIR``: the options of the run being continued (perf/probe.py reuses its finished stages).

The plan's ``plan.json`` holds the options the user gave (and only those: a default stays a default, so that
e.g. an open-loop probe's concurrency cap is the same as in the first attempt). Options given again now
override them (a URL or headers whose credentials were masked when saved must be given again).

May import: ``errors``, ``perf.config``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evalscope.errors import ConfigError
from evalscope.perf.config import PerfConfig, make_config

#: Never taken from a saved config (masked when saved, or meaningless to reuse).
_NOT_SAVED = frozenset({"resume", "api_key", "wandb_api_key", "swanlab_api_key"})


def resume_config(cfg: PerfConfig) -> tuple[PerfConfig, Path]:
    """The saved options of ``cfg.resume`` with the ones given now on top, and the run directory."""
    assert cfg.resume is not None
    run_dir = Path(cfg.resume)
    if not run_dir.is_dir():
        raise ConfigError(
            f"--resume {str(run_dir)!r} is not a directory", "pass the run directory to continue"
        )
    plan = run_dir / "plan.json"
    try:
        saved = json.loads(plan.read_text(encoding="utf-8"))
        fields = set(saved["fields_set"]) - _NOT_SAVED
        conf: dict[str, Any] = saved["config"]
    except FileNotFoundError:
        raise ConfigError(
            f"--resume {str(run_dir)!r}: no plan.json there",
            "only --sweep, --sla-auto-tune and --repeats runs can be resumed",
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"--resume {str(run_dir)!r}: plan.json is unreadable ({exc})") from None
    data = {k: conf[k] for k in fields if k in conf}
    if isinstance(data.get("headers"), dict):  # masked credentials cannot be reused
        data["headers"] = {k: v for k, v in data["headers"].items() if v != "***"}
    if isinstance(data.get("url"), str) and "***" in data["url"]:
        data.pop("url")
    given = {k: getattr(cfg, k) for k in cfg.model_fields_set if k != "resume"}
    data.update(given)
    if "url" in fields and "url" not in data:
        raise ConfigError(
            f"--resume {str(run_dir)!r}: the saved --url had credentials (masked)", "pass --url again"
        )
    return make_config(data), run_dir
