"""Sandbox for model-generated code (HumanEval, MBPP): see ``docs/sandbox.md``."""

from evalscope.eval.sandbox.core import (
    FAILURE_STATUSES,
    ExecResult,
    Sandbox,
    SandboxLimits,
    Status,
    probe_isolation,
    run_program,
    sandbox_uid_range,
    scrubbed_env,
)

__all__ = [
    "FAILURE_STATUSES",
    "ExecResult",
    "Sandbox",
    "SandboxLimits",
    "Status",
    "probe_isolation",
    "run_program",
    "sandbox_uid_range",
    "scrubbed_env",
]
