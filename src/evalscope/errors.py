"""User-facing error tree.

Every error a user can cause carries a one-line message, a hint naming the fix, and the documented exit code,
so the CLI can print one clean line instead of a traceback (the traceback is shown only with ``--debug``).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_ENDPOINT = 3
EXIT_ABORTED = 4
EXIT_THRESHOLD = 5
EXIT_INTERRUPTED = 130


class EvalscopeError(Exception):
    """Base of all errors meant for the user; ``exit_code`` is what the CLI returns."""

    exit_code: int = EXIT_INTERNAL

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.one_line()

    def one_line(self) -> str:
        """The message and the hint on one line, as printed by the CLI."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(EvalscopeError):
    """Invalid option, value or config file (exit 2)."""

    exit_code = EXIT_USAGE


class DatasetError(ConfigError):
    """A dataset file is missing, empty or malformed (exit 2)."""


class UnknownNameError(ConfigError):
    """A registry lookup failed; the message suggests the closest names (exit 2)."""


class EndpointError(EvalscopeError):
    """The endpoint is unreachable, rejects the key, has the wrong path or does not serve the model (exit 3)."""

    exit_code = EXIT_ENDPOINT


class AbortedError(EvalscopeError):
    """The error threshold was crossed (exit 4): perf stopped early; eval finished with too many errored
    samples (its reports are written)."""

    exit_code = EXIT_ABORTED


class ThresholdError(EvalscopeError):
    """The run finished but ``--strict`` found it untrustworthy or an SLA unmet (exit 5)."""

    exit_code = EXIT_THRESHOLD


class SandboxUnavailableError(EvalscopeError):
    """Code execution was requested but isolation is not available here (exit 2)."""

    exit_code = EXIT_USAGE
