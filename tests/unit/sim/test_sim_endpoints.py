"""Shapes of every endpoint, auth and model errors, tokenize and embeddings."""

from __future__ import annotations

import base64
import math
from array import array
from typing import Any

import aiohttp
import pytest

from evalscope.sim import SimConfig, count_tokens, tokenize

pytestmark = pytest.mark.timeout(30)

MSGS = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there friend"}]


async def test_chat_non_stream_shape(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    body = {"model": "sim-model", "messages": MSGS, "max_tokens": 7}
    async with http.post(f"{sim.url}/v1/chat/completions", json=body) as r:
        assert r.status == 200
        assert r.headers["x-request-id"].startswith("sim-")
        data = await r.json()
    assert data["object"] == "chat.completion"
    assert data["model"] == "sim-model"
    choice = data["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert count_tokens(choice["message"]["content"]) == 7
    assert choice["finish_reason"] == "length"
    assert data["usage"] == {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    rec = sim.truth[r.headers["x-request-id"]]
    assert rec.status == 200 and rec.outcome == "ok" and rec.completion_tokens == 7
    # released when the last token would be generated: TTFT + 6 ITL = 11 ms after arrival
    assert rec.end_ns - rec.arrival_ns >= 11_000_000


async def test_completions_shape(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(default_output_tokens=4)
    async with http.post(f"{sim.url}/v1/completions", json={"model": "sim-model", "prompt": "a b c"}) as r:
        data = await r.json()
    assert data["object"] == "text_completion"
    assert count_tokens(data["choices"][0]["text"]) == 4
    assert data["choices"][0]["finish_reason"] == "stop"
    assert data["usage"]["prompt_tokens"] == 3
    async with http.post(f"{sim.url}/v1/completions", json={"prompt": [1, 2, 3, 4], "max_tokens": 2}) as r:
        data = await r.json()
    assert data["usage"]["prompt_tokens"] == 4  # token ids count one each; model defaults to the first


async def test_models_health_unknown_path(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(models=["m1", "m2"])
    async with http.get(f"{sim.url}/v1/models") as r:
        data = await r.json()
    assert [m["id"] for m in data["data"]] == ["m1", "m2"]
    assert data["object"] == "list" and data["data"][0]["object"] == "model"
    async with http.get(f"{sim.url}/health") as r:
        assert r.status == 200
    async with http.get(f"{sim.url}/v2/nothing") as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == 404


async def test_wrong_model_404_body(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim()
    async with http.post(f"{sim.url}/v1/chat/completions", json={"model": "x", "messages": MSGS}) as r:
        assert r.status == 404
        body = await r.json()
    assert body["error"]["message"] == "The model `x` does not exist."
    assert body["error"]["type"] == "NotFoundError"
    assert body["error"]["code"] == 404
    assert sim.stats()["by_status"] == {"404": 1}


async def test_api_key_401(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(api_key="sekret")
    url = f"{sim.url}/v1/chat/completions"
    body = {"model": "sim-model", "messages": MSGS, "max_tokens": 1}
    async with http.post(url, json=body) as r:
        assert r.status == 401
        err = (await r.json())["error"]
    assert err["code"] == 401 and err["type"] == "AuthenticationError" and err["message"]
    async with http.post(url, json=body, headers={"Authorization": "Bearer wrong"}) as r:
        assert r.status == 401
    async with http.post(url, json=body, headers={"Authorization": "Bearer sekret"}) as r:
        assert r.status == 200
    async with http.get(f"{sim.url}/v1/models") as r:
        assert r.status == 401
    async with http.get(f"{sim.url}/health") as r:
        assert r.status == 200


async def test_bad_requests_400(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_model_len=4)
    url = f"{sim.url}/v1/chat/completions"
    async with http.post(url, data=b"{nope") as r:
        assert r.status == 400
    async with http.post(url, json={"model": "sim-model"}) as r:
        assert r.status == 400
    async with http.post(
        url, json={"messages": [{"role": "user", "content": "one two three four five"}]}
    ) as r:
        assert r.status == 400
        assert "maximum context length" in (await r.json())["error"]["message"]


async def test_tokenize_like_vllm(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(max_model_len=1000)
    async with http.post(f"{sim.url}/tokenize", json={"model": "sim-model", "prompt": "one two  three"}) as r:
        data = await r.json()
    assert data["count"] == 3 and data["max_model_len"] == 1000 and len(data["tokens"]) == 3
    async with http.post(f"{sim.url}/tokenize", json={"messages": MSGS}) as r:
        data2 = await r.json()
    assert data2["count"] == 5  # same count the chat endpoint reports as prompt_tokens
    async with http.post(f"{sim.url}/tokenize", json={"model": "nope", "prompt": "x"}) as r:
        assert r.status == 404
    # ids are stable: the same word gets the same id
    async with http.post(f"{sim.url}/tokenize", json={"prompt": "one one"}) as r:
        ids = (await r.json())["tokens"]
    assert ids[0] == ids[1] == data["tokens"][0]


async def test_embeddings_deterministic(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(embedding_dim=16)
    url = f"{sim.url}/v1/embeddings"
    async with http.post(url, json={"model": "sim-model", "input": ["a b", "c", "a b"]}) as r:
        data = await r.json()
    vecs = [d["embedding"] for d in data["data"]]
    assert [d["index"] for d in data["data"]] == [0, 1, 2]
    assert len(vecs[0]) == 16 and vecs[0] == vecs[2] and vecs[0] != vecs[1]
    assert math.isclose(sum(v * v for v in vecs[0]), 1.0, rel_tol=1e-9)
    assert data["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    async with http.post(url, json={"input": "a b", "encoding_format": "base64"}) as r:
        b64 = (await r.json())["data"][0]["embedding"]
    decoded = array("f", base64.b64decode(b64)).tolist()
    assert decoded == pytest.approx(vecs[0], rel=1e-6)
    async with http.post(url, json={"input": []}) as r:
        assert r.status == 400


def test_tokenizer_contract() -> None:
    text = "  Hello,  world!\nnew line "
    toks = tokenize(text)
    assert "".join(toks) == text
    assert len(toks) == count_tokens(text) == 4
    assert count_tokens("") == 0 and tokenize("   ") == []


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="sum to <= 1"):
        SimConfig(error_rate=0.6, drop_rate=0.6)
    with pytest.raises(ValueError):
        SimConfig(bogus=1)  # type: ignore[call-arg]
    cfg = SimConfig()
    assert (cfg.ttft_ms, cfg.itl_ms, cfg.jitter, cfg.seed, cfg.models) == (50.0, 10.0, 0.0, 0, ["sim-model"])
