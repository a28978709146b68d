"""The legend printed under the latency table: the abbreviations in its first column, in one line."""

from __future__ import annotations

from typing import Any

#: One-line definitions of the latency rows' names (docs/metrics.md has the full ones).
LATENCY_LEGEND: dict[str, str] = {
    "ttft": "ttft: time to first token",
    "ttfo": "ttfo: time to first output text (after any reasoning)",
    "tpot": "tpot: time per output token after the first",
    "itl": "itl: inter-token latency",
    "icl": "icl: gaps between chunks",
    "latency_from_schedule": "from_schedule: end minus the scheduled send time",
}


def latency_legend(stage: dict[str, Any]) -> str:
    """The legend line for the latency rows present in ``stage``."""
    return "; ".join(text for key, text in LATENCY_LEGEND.items() if stage.get(key))
