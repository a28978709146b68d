"""Upstream EvalScope constants still found in users' scripts (``EvalType.SERVICE`` ...)."""

from __future__ import annotations


class EvalType:
    """Values of ``eval_type`` (see docs/compat.md for what each one does here)."""

    SERVICE = "service"
    OPENAI_API = "openai_api"
    CHECKPOINT = "checkpoint"
    MOCK_LLM = "mock_llm"
