"""Hostile replies of the simulator (``usage_fault``): what buggy or hostile servers were seen to send."""

from __future__ import annotations

from typing import Any


def bad_usage(fault: str, prompt: int, completion: int) -> Any:
    """The usage object sent by ``--usage-fault`` (what hostile or buggy servers were seen to send)."""
    if fault == "string":
        return {"prompt_tokens": str(prompt), "completion_tokens": str(completion), "total_tokens": "n/a"}
    if fault == "text":
        return {"prompt_tokens": "some", "completion_tokens": "many", "total_tokens": "lots"}
    if fault == "negative":
        return {"prompt_tokens": -prompt, "completion_tokens": -completion - 1, "total_tokens": -1}
    if fault == "huge":
        return {"prompt_tokens": 10**12, "completion_tokens": 10**12, "total_tokens": 2 * 10**12}
    if fault == "float":
        return {"prompt_tokens": prompt + 0.5, "completion_tokens": completion + 0.5, "total_tokens": 1.5}
    return [["junk"], {"completion_tokens": {"nested": completion}}]
