"""Types shared by the sandbox launchers (``core``: namespaces and bubblewrap; ``container``) and the
:class:`Backend` protocol they implement. No imports from the launchers, so none of them import each other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

Status = Literal["passed", "failed", "timeout", "oom", "output_limit", "sandbox_error"]
#: Statuses that count as a failed attempt (the program's fault). ``sandbox_error`` is neither pass nor fail.
FAILURE_STATUSES: frozenset[str] = frozenset({"failed", "timeout", "oom", "output_limit"})
#: How a program is isolated: our namespaces launcher as root (``root``) or in a user namespace (``userns``),
#: Debian's bubblewrap (``bwrap``), or nothing (``plain``, explicit opt-in only).
Isolation = Literal["root", "userns", "bwrap", "plain"]


@dataclass(slots=True)
class ExecResult:
    """How one program ended. ``status`` is ``passed`` only for exit code 0 within every limit."""

    status: Status
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float
    #: Output was cut at the cap.
    truncated: bool = False
    #: The signal that ended the program, if any (SIGKILL after a timeout, SIGXCPU, SIGXFSZ, ...).
    signal: int | None = None
    #: For ``sandbox_error``: what went wrong in the sandbox itself.
    error: str | None = None
    isolation: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def counted(self) -> bool:
        """False for sandbox errors, which are never scored as pass or fail."""
        return self.status != "sandbox_error"


@dataclass(slots=True)
class SandboxLimits:
    """Per-program limits. ``cpu_s`` None means ``ceil(timeout) + 1``."""

    memory_mb: int = 1024
    cpu_s: int | None = None
    max_processes: int = 64
    max_file_mb: int = 16
    max_output_bytes: int = 1 << 20
    tmpfs_mb: int = 64
    max_open_files: int = 256


class Backend(Protocol):
    """A way to run one untrusted program: the namespaces launcher, bubblewrap, a container engine."""

    #: What :attr:`ExecResult.isolation` says for its runs.
    name: str

    async def check(self) -> object:
        """Raise :class:`~evalscope.errors.SandboxUnavailableError` when this backend cannot isolate here."""

    async def run(self, program: str, timeout_s: float, stdin: bytes | None = None) -> ExecResult:
        """Run ``program`` (Python source); never raises for the program's behaviour."""
        ...
