"""The simulator's ``tools`` / ``tool_calls`` and ``image_url`` parts, in OpenAI's exact shapes, and our engine's
parser collecting streamed tool-call deltas."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import pytest

from evalscope.engine import Client, Request
from evalscope.sim import SimConfig, SimServer
from evalscope.sim.config import ScriptRule

pytestmark = pytest.mark.timeout(30)

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city", "days"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Find flights between two airports",
            "parameters": {"type": "object", "properties": {"src": {"type": "string"}}, "required": ["src"]},
        },
    },
]
ASK = [{"role": "user", "content": 'What is the weather in "Paris" for 3 days?'}]
PNG_1PX = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082"
    )
).decode()


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with http.post(f"{url}/v1/chat/completions", json={"model": "sim-model", **body}) as r:
        if body.get("stream") and r.status == 200:
            raw = await r.read()
            events = [b[6:] for b in raw.split(b"\n\n") if b.strip().startswith(b"data: ")]
            return r.status, [json.loads(e) for e in events if e != b"[DONE]"] + (
                ["[DONE]"] if events and events[-1] == b"[DONE]" else []
            )
        return r.status, await r.json()


async def test_whole_response_tool_call_shape(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    status, body = await post(http, sim.url, {"messages": ASK, "tools": TOOLS})
    assert status == 200
    ch = body["choices"][0]
    assert ch["finish_reason"] == "tool_calls"
    msg = ch["message"]
    assert msg["role"] == "assistant" and msg["content"] is None
    (tc,) = msg["tool_calls"]
    assert set(tc) == {"id", "type", "function"} and tc["type"] == "function" and tc["id"].startswith("call_")
    assert tc["function"]["name"] == "get_weather"  # shares "weather" with the question
    assert json.loads(tc["function"]["arguments"]) == {"city": "Paris", "days": 3}
    assert body["usage"]["completion_tokens"] == 1 + len(tc["function"]["arguments"].split())


async def test_streamed_tool_call_shape(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    status, events = await post(
        http,
        sim.url,
        {"messages": ASK, "tools": TOOLS, "stream": True, "stream_options": {"include_usage": True}},
    )
    assert status == 200 and events[-1] == "[DONE]"
    chunks = [e for e in events[:-1] if e["choices"]]
    first = chunks[0]["choices"][0]
    assert first["delta"]["role"] == "assistant" and first["delta"]["content"] is None
    head = first["delta"]["tool_calls"][0]
    assert head == {
        "index": 0,
        "id": head["id"],
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert all(set(p) == {"index", "function"} and set(p["function"]) == {"arguments"} for p in pieces)
    args = "".join(p["function"]["arguments"] for p in pieces)
    assert json.loads(args) == {"city": "Paris", "days": 3}
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] == "tool_calls"
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])
    usage = events[-2]["usage"]
    assert usage["completion_tokens"] == 1 + len(pieces)


async def test_tool_choice_and_policies(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    after_result = [
        *ASK,
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    _, body = await post(http, sim.url, {"messages": after_result, "tools": TOOLS})
    assert body["choices"][0]["finish_reason"] == "stop" and body["choices"][0]["message"]["content"]
    _, body = await post(http, sim.url, {"messages": after_result, "tools": TOOLS, "tool_choice": "required"})
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    forced = {"type": "function", "function": {"name": "search_flights"}}
    _, body = await post(http, sim.url, {"messages": ASK, "tools": TOOLS, "tool_choice": forced})
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "search_flights"
    _, body = await post(http, sim.url, {"messages": ASK, "tools": TOOLS, "tool_choice": "none"})
    assert "tool_calls" not in body["choices"][0]["message"]
    never = await make_sim(tool_policy="never")
    _, body = await post(http, never.url, {"messages": ASK, "tools": TOOLS})
    assert body["choices"][0]["finish_reason"] == "stop"
    first = await make_sim(tool_policy="first")
    _, body = await post(
        http, first.url, {"messages": [{"role": "user", "content": "flights?"}], "tools": TOOLS}
    )
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


async def test_scripted_tool_call_answer_key(make_sim: Any, http: aiohttp.ClientSession) -> None:
    rules = [
        ScriptRule(pattern="Paris", tool_call={"name": "search_flights", "arguments": {"src": "CDG"}}),
        ScriptRule(pattern="Rome", reply="no call"),
    ]
    sim = await make_sim(policy="scripted", script_rules=rules)
    for stream in (False, True):
        status, out = await post(http, sim.url, {"messages": ASK, "tools": TOOLS, "stream": stream})
        assert status == 200
        if stream:
            parts = [e["choices"][0]["delta"].get("tool_calls", [{}])[0] for e in out[:-1] if e["choices"]]
            name = parts[0]["function"]["name"]
            args = "".join(p.get("function", {}).get("arguments", "") for p in parts)
        else:
            tc = out["choices"][0]["message"]["tool_calls"][0]
            name, args = tc["function"]["name"], tc["function"]["arguments"]
        assert name == "search_flights" and json.loads(args) == {"src": "CDG"}
    _, body = await post(http, sim.url, {"messages": [{"role": "user", "content": "Rome"}], "tools": TOOLS})
    assert body["choices"][0]["message"]["content"] == "no call"


@pytest.mark.parametrize("stream", [False, True])
async def test_engine_client_collects_tool_calls(stream: bool) -> None:
    async with SimServer(SimConfig(ttft_ms=1, itl_ms=0), port=0) as sim:
        async with Client(sim.url, "sim-model", keep_text=True, stream=stream) as c:
            rec = await c.send(Request(request_id="t", messages=ASK, params={"tools": TOOLS}))
    assert rec.ok, rec.error
    assert rec.finish_reason == "tool_calls" and not rec.text
    assert rec.tool_calls is not None and len(rec.tool_calls) == 1
    fn = rec.tool_calls[0]["function"]
    assert fn["name"] == "get_weather" and json.loads(fn["arguments"]) == {"city": "Paris", "days": 3}
    assert rec.tool_calls[0]["id"].startswith("call_")


def image_msg(url: str, text: str = "Which colour is the square?\nA. red\nB. blue\nC. green") -> list[Any]:
    parts = [{"type": "text", "text": text}, {"type": "image_url", "image_url": {"url": url}}]
    return [{"role": "user", "content": parts}]


@pytest.mark.parametrize("stream", [False, True])
async def test_image_parts_accepted_and_answered_by_policy(
    stream: bool, make_sim: Any, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(
        policy="scripted", script_rules=[ScriptRule(pattern="colour is the square", reply="B")]
    )
    status, out = await post(
        http, sim.url, {"messages": image_msg(f"data:image/png;base64,{PNG_1PX}"), "stream": stream}
    )
    assert status == 200
    text = (
        "".join(e["choices"][0]["delta"].get("content", "") for e in out[:-1] if e["choices"])
        if stream
        else out["choices"][0]["message"]["content"]
    )
    assert text == "B"
    choice = await make_sim(policy="choice", seed=3)
    _, a = await post(http, choice.url, {"messages": image_msg(f"data:image/png;base64,{PNG_1PX}")})
    _, b = await post(http, choice.url, {"messages": image_msg("https://example.invalid/x.png")})
    ans = a["choices"][0]["message"]["content"].splitlines()[-1]
    assert ans in {"ANSWER: A", "ANSWER: B", "ANSWER: C"}
    assert ans == b["choices"][0]["message"]["content"].splitlines()[-1]  # answered from the text parts


@pytest.mark.parametrize(
    "url, why",
    [
        ("data:image/png;base64,@@not-base64@@", "not valid base64"),
        ("ftp://x/y.png", "http(s) URL or a data:image"),
        ("data:text/plain;base64,aGVsbG8=", "http(s) URL or a data:image"),
    ],
)
async def test_bad_image_is_400(url: str, why: str, make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    status, body = await post(http, sim.url, {"messages": image_msg(url)})
    assert status == 400 and why in body["error"]["message"] and body["error"]["type"] == "BadRequestError"
