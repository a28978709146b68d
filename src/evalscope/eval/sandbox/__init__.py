"""Sandbox for model-generated code (HumanEval, MBPP): see ``docs/sandbox.md``."""

from evalscope.eval.sandbox.core import (
    Sandbox,
    probe_isolation,
    run_program,
    sandbox_uid_range,
    scrubbed_env,
)
from evalscope.eval.sandbox.types import (
    FAILURE_STATUSES,
    Backend,
    ExecResult,
    Isolation,
    SandboxLimits,
    Status,
)

__all__ = [
    "FAILURE_STATUSES",
    "Backend",
    "ExecResult",
    "Isolation",
    "Sandbox",
    "SandboxLimits",
    "Status",
    "probe_isolation",
    "run_program",
    "sandbox_uid_range",
    "scrubbed_env",
]
