"""Headless Chromium for report tests: Debian's /usr/bin/chromium driven by Playwright, fully offline.

Records every console message, page error and network request, so a test can assert that a report made no
request except for the page itself.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def skip_reason() -> str | None:
    """Why browser tests cannot run here (None when they can)."""
    if not Path(CHROMIUM).exists():
        return "chromium not installed (apt-get install chromium chromium-driver; .ci/run does this)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright not installed (pip install -e '.[dev]')"
    return None


@dataclass
class PageLog:
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@contextmanager
def browser() -> Iterator[Any]:
    """A Chromium browser with a fresh user-data-dir, closed (and the dir removed) on exit."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="evalscope-chromium-") as profile, sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            headless=True,
            args=ARGS,
            viewport={"width": 1300, "height": 900},
        )
        try:
            yield ctx
        finally:
            ctx.close()


def open_page(ctx: Any, url: str, log: PageLog, wait_ready: bool = True, timeout_ms: int = 60_000) -> Any:
    """Open ``url`` in a new tab, logging console errors, page errors and requests; wait for the render."""
    page = ctx.new_page()
    page.on("console", lambda m: log.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: log.page_errors.append(str(e)))
    page.on("request", lambda r: log.requests.append(r.url))
    page.goto(url, wait_until="load", timeout=timeout_ms)
    if wait_ready:
        page.wait_for_selector("#app[data-ready='1']", timeout=timeout_ms)
    return page
