"""One self-contained HTML page: the report model as inline JSON, the stylesheet and the renderer inlined.

The page makes no request of any kind (no CDN, no font, no image): it opens offline and years from now. The
charts are hand-written SVG in ``assets/report.js`` (see docs/report.md for why no charting library).
The same renderer serves ``evalscope app``, which passes it a run id instead of an embedded model.
"""

from __future__ import annotations

import html
from functools import cache
from importlib import resources
from typing import Any

import orjson

#: Content-Security-Policy of every page: nothing may be fetched from anywhere but the page's own origin.
CSP_STATIC = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
CSP_APP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; connect-src 'self'; img-src data:"


@cache
def asset(name: str) -> str:
    """A file shipped in ``evalscope/report/assets`` (package data)."""
    return resources.files("evalscope.report").joinpath("assets", name).read_text(encoding="utf-8")


def _json_for_script(obj: Any) -> str:
    """JSON safe inside a ``<script>`` element (no ``</script>``, no ``<!--``)."""
    text = orjson.dumps(
        obj, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str
    ).decode()
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def page(
    title: str, config: dict[str, Any], model: dict[str, Any] | None = None, csp: str = CSP_STATIC
) -> str:
    """The HTML document: embedded ``model`` (a saved report) or ``config`` telling the renderer what to fetch."""
    data = (
        f'<script type="application/json" id="report-data">{_json_for_script(model)}</script>\n'
        if model is not None
        else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="generator" content="evalscope report">\n'
        f"<title>{html.escape(title)}</title>\n<style>{asset('report.css')}</style>\n</head><body>\n"
        '<div id="app">Loading… (this report needs JavaScript)</div>\n'
        f"{data}<script>window.EVALSCOPE = {_json_for_script(config)};</script>\n"
        f"<script>{asset('report.js')}</script>\n</body></html>\n"
    )


def render_html(model: dict[str, Any]) -> str:
    """The self-contained report page of one run."""
    return page(f"evalscope {model.get('kind')} report · {model.get('run_id')}", {"app": False}, model)
