"""Reports people look at: a self-contained ``report.html`` per run, text forms, and ``evalscope app``.

Everything is computed from a run directory's files (:mod:`evalscope.report.model`), never from live run
objects, so a report can be regenerated for an old run or for one that crashed.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def write_html(run_dir: Path) -> Path:
    """Build and atomically write ``<run_dir>/report.html``; returns its path."""
    from evalscope.report.html import render_html
    from evalscope.report.model import build_model

    run_dir = Path(run_dir)
    text = render_html(build_model(run_dir))
    path = run_dir / REPORT_FILE
    tmp = run_dir / f".{REPORT_FILE}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def write_html_safely(run_dir: Path | None) -> Path | None:
    """:func:`write_html` for the end of a run: a failure is one warning, never lost data or another exit code."""
    if run_dir is None:
        return None
    try:
        return write_html(run_dir)
    except BaseException as exc:
        from evalscope.engine.redact import scrub

        log.warning(
            "could not write %s: %s", Path(run_dir) / REPORT_FILE, scrub(f"{type(exc).__name__}: {exc}")
        )
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        return None
