"""Where an API key comes from, with one rule for every front end (perf, eval, the eval judge).

Order: the flag (``--api-key``), else the file (``--api-key-file``: its first non-blank line), else the
environment (``EVALSCOPE_API_KEY``, then ``OPENAI_API_KEY``).

- ``--api-key ""`` means "no key" on purpose: the environment is not consulted (a way to send no
  ``Authorization`` header while a key is exported).
- A file the user named must give a key: missing, unreadable, not UTF-8 or empty is a usage error (exit 2),
  never a silent fall back to no key or to the environment: a secret mount that failed would otherwise send
  unauthenticated requests (401s much later) or somebody else's key.
- Giving both the flag and the file is a usage error: which one wins would be a guess.

The key itself never appears in an error message.
"""

from __future__ import annotations

import os
from pathlib import Path

from evalscope.errors import ConfigError

#: Environment variables read, in order, when neither flag nor file gives a key.
API_KEY_ENV: tuple[str, ...] = ("EVALSCOPE_API_KEY", "OPENAI_API_KEY")


def read_key_file(path: Path, flag: str = "--api-key-file") -> str:
    """The first non-blank line of ``path``, stripped; ConfigError (exit 2) when there is none."""
    hint = "pass a readable UTF-8 file whose first line is the key"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{flag} {str(path)!r} does not exist", hint) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{flag} {str(path)!r} is not UTF-8 text", hint) from None
    except OSError as exc:
        raise ConfigError(f"{flag} {str(path)!r}: cannot read ({exc.strerror})", hint) from None
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    raise ConfigError(f"{flag} {str(path)!r} is empty", "put the key in it")


def resolve_api_key(
    key: str | None,
    key_file: Path | None,
    *,
    flag: str = "--api-key",
    file_flag: str = "--api-key-file",
    env: tuple[str, ...] = API_KEY_ENV,
) -> str | None:
    """The API key by the module's rule; ``None`` when no source gives one (or ``--api-key ""``)."""
    if key is not None and key_file is not None:
        raise ConfigError(f"give either {flag} or {file_flag}, not both")
    if key is not None:
        return key or None
    if key_file is not None:
        return read_key_file(key_file, file_flag)
    for var in env:
        val = os.environ.get(var)
        if val:
            return val
    return None
