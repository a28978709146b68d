"""``evalscope app``: a local web app over an outputs directory (aiohttp, loopback by default, no CDN).

Pages are the report renderer of the self-contained report (``assets/report.js``) in app mode: it fetches the
report model and pages samples through a small JSON API instead of reading embedded data.

Large and live runs: a perf run is read once, in the background, by a :class:`PerfAccumulator` that keeps
aggregates plus a 13-byte index entry (offset, status, stage) per record, never the records; it then tails
``records.jsonl`` while the run is running, so the page follows the run live (the browser polls every 2 s).
A request for a page of records reads only those lines, by offset. Eval journals are indexed the same way
(offset, flags, subset, score per sample).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from aiohttp import web

from evalscope.engine.redact import redact
from evalscope.report.html import CSP_APP, page
from evalscope.report.model import (
    STATUS_CODES,
    PerfAccumulator,
    RunDirError,
    eval_model,
    light_record,
    list_runs,
    perf_model,
    run_kind,
    sample_flags,
    sample_view,
)

FEED_CHUNK = 5000
_FLAG_BITS = {"correct": 1, "wrong": 2, "unparsed": 4, "errored": 8, "truncated": 16}


def _json(obj: Any, status: int = 200) -> web.Response:
    body = orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY, default=str)
    return web.Response(body=body, status=status, content_type="application/json")


def _int(request: web.Request, name: str, default: int, hi: int = 1 << 62) -> int:
    try:
        return max(0, min(hi, int(request.query.get(name, default))))
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be an integer") from None


def _manifest_status(run_dir: Path) -> str:
    try:
        return str(orjson.loads((run_dir / "manifest.json").read_bytes()).get("status", "unknown"))
    except (OSError, orjson.JSONDecodeError):
        return "unknown"


class PerfRun:
    """A perf run directory, read incrementally in a background task."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records = path / "records.jsonl"
        cfg: dict[str, Any] = {}
        with contextlib.suppress(OSError, orjson.JSONDecodeError):
            cfg = orjson.loads((path / "manifest.json").read_bytes()).get("config") or {}
        # a finished run's tables come from summary.json: only the CDFs need the records (fast path)
        self.acc = PerfAccumulator(
            profile=str(cfg.get("metric_profile") or "default"),
            keep_index=True,
            light=(path / "summary.json").is_file(),
        )
        self.lock = threading.Lock()
        self.task: asyncio.Task[None] | None = None
        self.caught_up = False

    def ensure_reader(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._reader())

    def _feed(self) -> bool:
        with self.lock:
            return self.acc.feed_file(self.records, max_records=FEED_CHUNK)

    async def _reader(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            at_end = await loop.run_in_executor(None, self._feed)
            if not at_end:
                await asyncio.sleep(0)
                continue
            self.caught_up = True
            if _manifest_status(self.path) != "running":
                # a last pass: lines written between the read and the status change
                await loop.run_in_executor(None, self._feed)
                return
            await asyncio.sleep(1.0)

    def model(self) -> dict[str, Any]:
        with self.lock:
            m = perf_model(self.path, self.acc)
            size = self.records.stat().st_size if self.records.is_file() else 0
            m["progress"] = {"bytes": self.acc.pos, "total": size, "done": self.caught_up}
        return m

    def page(self, status: str, stage: str, offset: int, limit: int) -> dict[str, Any]:
        with self.lock:
            n = len(self.acc.offsets)
            st = np.frombuffer(self.acc.statuses, dtype=np.int8, count=n) if n else np.zeros(0, np.int8)
            sg = np.frombuffer(self.acc.stages, dtype=np.int16, count=n) if n else np.zeros(0, np.int16)
            mask = np.ones(n, dtype=bool)
            if status:
                if status not in STATUS_CODES:
                    raise web.HTTPBadRequest(text=f"status must be one of {', '.join(STATUS_CODES)}")
                mask &= st == STATUS_CODES[status]
            if stage != "":
                try:
                    mask &= sg == int(stage)
                except ValueError:
                    raise web.HTTPBadRequest(text="stage must be an integer") from None
            idx = np.flatnonzero(mask)
            total = int(idx.size)
            chosen = [int(self.acc.offsets[i]) for i in idx[offset : offset + limit]]
            t0 = self.acc.t0_ns() or 0
        rows = []
        with open(self.records, "rb") as f:
            for off in chosen:
                f.seek(off)
                d = orjson.loads(f.readline())
                r = light_record(d, int(d.get("stage", 0) or 0))
                r["t_s"] = (r.pop("sent_ns") - t0) / 1e9
                rows.append(r)
        return {"total": total, "rows": redact(rows)}


class EvalRun:
    """An eval run directory: the model (cached until a file changes) and an index of journal lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sig: tuple[Any, ...] | None = None
        self._model: dict[str, Any] | None = None
        # (benchmark, sample id, repeat) -> [offset, flag bits, subset, score]; insertion order = journal order
        self.index: dict[tuple[str, str, int], list[Any]] = {}
        self.lock = threading.Lock()

    def _signature(self) -> tuple[Any, ...]:
        files = [self.path / "manifest.json", *sorted((self.path / "journal").glob("*.jsonl"))]
        files += sorted((self.path / "reports").glob("*/*.json"))
        out = []
        for p in files:
            with contextlib.suppress(OSError):
                s = p.stat()
                out.append((str(p), s.st_size, s.st_mtime_ns))
        return tuple(out)

    def refresh(self) -> None:
        with self.lock:
            sig = self._signature()
            if sig == self.sig:
                return
            self._model = eval_model(self.path, sample_budget=-1)
            self._model["samples"] = []
            index: dict[tuple[str, str, int], list[Any]] = {}
            from evalscope.eval.journal import iter_journals
            from evalscope.report.model import iter_lines

            for bench, jp in iter_journals(self.path):
                for off, line in iter_lines(jp):
                    try:
                        e = orjson.loads(line)
                        key = (bench, str(e["sample_id"]), int(e.get("repeat", 0)))
                    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                        continue
                    bits = sum(_FLAG_BITS[k] for k, v in sample_flags(e).items() if v)
                    index.pop(key, None)  # a later line supersedes (a retried sample moves to the end)
                    index[key] = [off, bits, e.get("subset"), e.get("score")]
            self.index = index
            self.sig = sig

    def model(self) -> dict[str, Any]:
        self.refresh()
        assert self._model is not None
        return self._model

    def _read(self, bench: str, offset: int) -> dict[str, Any]:
        with open(self.path / "journal" / f"{bench}.jsonl", "rb") as f:
            f.seek(offset)
            return dict(orjson.loads(f.readline()))

    def page(self, flag: str, bench: str, subset: str, q: str, offset: int, limit: int) -> dict[str, Any]:
        self.refresh()
        if flag and flag not in _FLAG_BITS:
            raise web.HTTPBadRequest(text=f"flag must be one of {', '.join(_FLAG_BITS)}")
        bit = _FLAG_BITS.get(flag, 0)
        keys = [
            k
            for k, v in self.index.items()
            if (not bit or v[1] & bit) and (not bench or k[0] == bench) and (not subset or v[2] == subset)
        ]
        if q:
            ql = q.lower()
            hits = []
            for k in keys:
                v = sample_view(self._read(k[0], self.index[k][0]), cap=None)
                hay = "\n".join(
                    str(v.get(f) or "") for f in ("id", "prompt", "output", "reasoning", "extracted", "gold")
                )
                if ql in hay.lower():
                    hits.append(k)
            keys = hits
        rows = [
            sample_view(self._read(k[0], self.index[k][0]), cap=None) for k in keys[offset : offset + limit]
        ]
        return {"total": len(keys), "rows": redact(rows)}


class App:
    def __init__(self, outputs: Path) -> None:
        self.outputs = outputs.resolve()
        self.runs: dict[Path, PerfRun | EvalRun] = {}

    def resolve(self, run_id: str | None) -> Path:
        if not run_id:
            raise web.HTTPBadRequest(text="missing run id")
        parts = Path(run_id).parts
        # a path below --outputs, by name: no "..", not absolute (symlinked runs inside --outputs are fine)
        if not parts or Path(run_id).is_absolute() or any(x in ("..", ".") for x in parts):
            raise web.HTTPNotFound(text=f"no run {run_id!r} under {self.outputs}")
        p = self.outputs.joinpath(*parts)
        if not p.is_dir():
            raise web.HTTPNotFound(text=f"no run {run_id!r} under {self.outputs}")
        return p

    def get(self, run_id: str | None) -> PerfRun | EvalRun:
        p = self.resolve(run_id)
        r = self.runs.get(p)
        if r is None:
            try:
                kind = run_kind(p)
            except RunDirError as exc:
                raise web.HTTPNotFound(text=str(exc)) from None
            r = self.runs[p] = PerfRun(p) if kind == "perf" else EvalRun(p)
        if isinstance(r, PerfRun):
            r.ensure_reader()
        return r

    # ---- handlers --------------------------------------------------------------------------------------

    async def index_page(self, request: web.Request) -> web.Response:
        return self._page("evalscope runs", {"app": True, "page": "runs", "outputs": str(self.outputs)})

    async def run_page(self, request: web.Request) -> web.Response:
        rid = request.query.get("id")
        self.resolve(rid)
        return self._page(f"evalscope · {rid}", {"app": True, "page": "run", "run": rid})

    async def compare_page(self, request: web.Request) -> web.Response:
        ids = [x for x in request.query.get("runs", "").split(",") if x]
        if not 2 <= len(ids) <= 3:
            raise web.HTTPBadRequest(text="compare 2 or 3 runs: ?runs=a,b[,c]")
        for rid in ids:
            self.resolve(rid)
        return self._page("evalscope · compare", {"app": True, "page": "compare", "runs": ids})

    def _page(self, title: str, cfg: dict[str, Any]) -> web.Response:
        resp = web.Response(text=page(title, cfg, csp=CSP_APP), content_type="text/html")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    async def api_runs(self, request: web.Request) -> web.Response:
        loop = asyncio.get_running_loop()
        return _json(await loop.run_in_executor(None, list_runs, self.outputs))

    async def api_model(self, request: web.Request) -> web.Response:
        r = self.get(request.query.get("run"))
        loop = asyncio.get_running_loop()
        m = await loop.run_in_executor(None, r.model)
        m["run_id"] = request.query.get("run")
        return _json(m)

    async def api_records(self, request: web.Request) -> web.Response:
        r = self.get(request.query.get("run"))
        if not isinstance(r, PerfRun):
            raise web.HTTPBadRequest(text="records are for perf runs; use /api/samples for eval runs")
        args = (
            request.query.get("status", ""),
            request.query.get("stage", ""),
            _int(request, "offset", 0),
            _int(request, "limit", 100, 1000),
        )
        return _json(await asyncio.get_running_loop().run_in_executor(None, r.page, *args))

    async def api_samples(self, request: web.Request) -> web.Response:
        r = self.get(request.query.get("run"))
        if not isinstance(r, EvalRun):
            raise web.HTTPBadRequest(text="samples are for eval runs; use /api/records for perf runs")
        qy = request.query
        args = (
            qy.get("flag", ""),
            qy.get("benchmark", ""),
            qy.get("subset", ""),
            qy.get("q", ""),
            _int(request, "offset", 0),
            _int(request, "limit", 50, 1000),
        )
        return _json(await asyncio.get_running_loop().run_in_executor(None, r.page, *args))

    async def api_sample_diff(self, request: web.Request) -> web.Response:
        ids = [x for x in request.query.get("runs", "").split(",") if x]
        bench = request.query.get("benchmark", "")
        runs = [self.get(i) for i in ids]
        if len(runs) < 2 or not all(isinstance(r, EvalRun) for r in runs):
            raise web.HTTPBadRequest(text="sample_diff compares 2 or 3 eval runs")
        offset, limit = _int(request, "offset", 0), _int(request, "limit", 50, 1000)

        def work() -> dict[str, Any]:
            evs = [r for r in runs if isinstance(r, EvalRun)]
            for r in evs:
                r.refresh()
            keysets = [{k for k in r.index if k[0] == bench} for r in evs]
            common = set.intersection(*keysets) if keysets else set()
            union = set.union(*keysets) if keysets else set()
            order = [k for k in evs[0].index if k in union] + sorted(union - set(evs[0].index))
            differ = []
            for k in order:
                scores = [r.index[k][3] if k in r.index else None for r in evs]
                if k not in common or len({repr(s) for s in scores}) > 1:
                    differ.append(k)
            rows = []
            for k in differ[offset : offset + limit]:
                per: list[dict[str, Any] | None] = []
                gold = subset = None
                for r in evs:
                    if k not in r.index:
                        per.append(None)
                        continue
                    e = r._read(k[0], r.index[k][0])
                    gold, subset = e.get("gold", gold), e.get("subset", subset)
                    per.append(
                        {"score": e.get("score"), "extracted": e.get("extracted"), "status": e.get("status")}
                    )
                rows.append({"id": k[1], "repeat": k[2], "subset": subset, "gold": gold, "runs": per})
            return {"total": len(differ), "common": len(common), "rows": redact(rows)}

        return _json(await asyncio.get_running_loop().run_in_executor(None, work))

    def make(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/", self.index_page)
        app.router.add_get("/run", self.run_page)
        app.router.add_get("/compare", self.compare_page)
        app.router.add_get("/api/runs", self.api_runs)
        app.router.add_get("/api/model", self.api_model)
        app.router.add_get("/api/records", self.api_records)
        app.router.add_get("/api/samples", self.api_samples)
        app.router.add_get("/api/sample_diff", self.api_sample_diff)
        app.on_shutdown.append(self._stop)
        return app

    async def _stop(self, app: web.Application) -> None:
        for r in self.runs.values():
            if isinstance(r, PerfRun) and r.task is not None:
                r.task.cancel()


async def serve(outputs: Path, host: str = "127.0.0.1", port: int = 7860, ready: Any = None) -> None:
    """Serve until cancelled; ``ready(url)`` is called once the socket listens."""
    runner = web.AppRunner(App(outputs).make(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = getattr(site, "_server", None)
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    if ready is not None:
        ready(f"http://{shown}:{bound}/")
    try:
        await asyncio.Event().wait()  # until cancelled (Ctrl-C)
    finally:
        await runner.cleanup()
