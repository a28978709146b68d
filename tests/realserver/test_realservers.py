"""Issue 9's conformance matrix against real servers (llama-server, llama-cpp-python, vLLM, transformers serve).

These tests need the rig's builds (``nox -s realservers -- setup``, many minutes, several GB) and run only when
``EVALSCOPE_REALSERVERS`` names its discovery file (``/work/cache/realservers/rig.json``, or ``1`` for that
default); otherwise every one of them skips with the reason. CI does not set it: see
benchmarks/realservers/README.md for why. Each server is started once per module (its own process group,
loopback, a free port) and stopped by PID at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import rig

pytestmark = [pytest.mark.realserver, pytest.mark.slow]


def _discovery() -> dict[str, Any]:
    where = os.environ.get("EVALSCOPE_REALSERVERS", "")
    if not where:
        pytest.skip(
            "real servers not enabled: build them with `nox -s realservers -- setup`, then set "
            f"EVALSCOPE_REALSERVERS={rig.DISCOVERY}"
        )
    found = rig.read_discovery(None if where == "1" else Path(where))
    if not found:
        pytest.skip(
            f"EVALSCOPE_REALSERVERS={where}: no readable discovery file (run `nox -s realservers -- setup`)"
        )
    return found


@pytest.fixture(scope="module", params=rig.SERVERS)
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[rig.Server]:
    found = _discovery()
    srv = rig.make_servers(found).get(request.param)
    if srv is None:
        pytest.skip(f"{request.param}: not built in {found.get('cache')} (run `nox -s realservers -- setup`)")
    srv.port = rig.free_port()
    try:
        srv.start(tmp_path_factory.mktemp(request.param))
    except RuntimeError as exc:
        pytest.fail(f"{request.param} did not start: {exc}")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.mark.timeout(900)
@pytest.mark.parametrize("cell", rig.CELLS, ids=[c.name for c in rig.CELLS])
def test_perf_cell(server: rig.Server, cell: rig.Cell, tmp_path: Path) -> None:
    off, before = server.log_offset(), server.scrape()
    res = rig.ours_perf(server, cell, tmp_path)
    served = server.served_since(off, before)
    assert "error" not in res, res["error"]
    assert res["sent"] == cell.number
    # A request the server never saw (a kept-alive connection closed under it) is resent, not failed.
    assert res["failed"] == 0, f"{res['errors']}; server says: {served}; log {res['log']}"
    assert res["succeeded"] == cell.number


@pytest.mark.timeout(900)
def test_eval_gsm8k_arc(server: rig.Server, tmp_path: Path) -> None:
    if not rig.DATASETS.is_dir():
        pytest.skip(f"real benchmark data not found at {rig.DATASETS}")
    res = rig.ours_eval(server, tmp_path)
    assert "error" not in res, res["error"]
    for bench in ("gsm8k", "arc"):
        assert res[bench]["errored"] == 0, f"{bench}: {res[bench]['errors']}; log {res['log']}"


@pytest.mark.timeout(300)
@pytest.mark.parametrize("api", ["openai", "openai-completions"])
def test_learned_frames_read_what_the_general_path_reads(
    server: rig.Server, api: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On each real server's own bytes, the built-in transport (which reads plain text events through a learned
    frame) gives the text, events and finish reason that the SSE decoder + ``parse_event`` give on the same
    bodies. Also reports how many events took the learned frame, so a server whose frames never repeat shows."""
    from evalscope.engine import Client, Request, h1, run
    from evalscope.engine.protocols import get_protocol
    from evalscope.engine.protocols.base import EV_TOKEN, StreamState
    from evalscope.engine.sse import SSEDecoder

    bodies: dict[int, list[bytes]] = {}
    real_on_body = h1._Exchange.on_body

    def spy(self: Any, body: bytes) -> None:
        if self.mode == h1._M_SSE:
            bodies.setdefault(self.rec.request_id, []).append(bytes(body))
        real_on_body(self, body)

    monkeypatch.setattr(h1._Exchange, "on_body", spy)
    path = "/v1/chat/completions" if api == "openai" else "/v1/completions"

    async def go() -> list[Any]:
        async with Client(server.base + path, server.model, api=api, keep_text=True) as c:
            calls = 0
            real_parse = c.protocol.parse_event

            def counting(data: bytes, st: StreamState) -> int:
                nonlocal calls
                calls += 1
                return real_parse(data, st)

            c.protocol.parse_event = counting  # type: ignore[method-assign]
            recs = [
                await c.send(Request(request_id=i, prompt=f"Tell me a story about {i} cats.", max_tokens=48))
                for i in range(6)
            ]
            print(f"{server.name} {api}: {sum(r.n_events for r in recs)} token events, {calls} JSON parses")
            return recs

    recs = run(go())
    proto = get_protocol(api)
    for rec in recs:
        assert rec.ok, rec.error
        dec, st, n = SSEDecoder(), StreamState(True), 0
        for b in bodies[rec.request_id]:
            for _name, data in dec.feed(b):
                if not st.done:
                    n += bool(proto.parse_event(data, st) & EV_TOKEN)
        assert rec.text == "".join(st.text_parts)
        assert rec.n_events == n
        assert rec.finish_reason == st.finish_reason
