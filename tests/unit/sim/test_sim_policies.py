"""Reply policies (random, echo, choice, scripted) and seeded determinism."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from evalscope.sim.policies import find_options

pytestmark = pytest.mark.timeout(30)


async def reply(http: aiohttp.ClientSession, url: str, content: str, stream: bool = False, **kw: Any) -> str:
    body = {"model": "sim-model", "messages": [{"role": "user", "content": content}], "stream": stream, **kw}
    async with http.post(f"{url}/v1/chat/completions", json=body) as r:
        if not stream:
            return str((await r.json())["choices"][0]["message"]["content"])
        raw = await r.read()
    text = ""
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: {"):
            text += json.loads(block[6:])["choices"][0]["delta"].get("content", "")
    return text


async def test_random_is_seeded(make_sim: Any, http: aiohttp.ClientSession) -> None:
    a = await make_sim(seed=1)
    b = await make_sim(seed=1)
    c = await make_sim(seed=2)
    ra = await reply(http, a.url, "q", max_tokens=12)
    assert ra == await reply(http, b.url, "q", max_tokens=12)
    assert ra == await reply(http, a.url, "q", max_tokens=12, stream=True)  # same text streamed
    assert ra != await reply(http, c.url, "q", max_tokens=12)
    assert ra != await reply(http, a.url, "another prompt", max_tokens=12)


async def test_echo_cycles_prompt(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(policy="echo")
    assert await reply(http, sim.url, "alpha beta gamma", max_tokens=5) == "alpha beta gamma alpha beta "


async def test_choice_answers_from_options(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(policy="choice", seed=7)
    q = "Which is right?\nA. one\nB. two\nC. three\n"
    answers = set()
    for i in range(12):
        text = await reply(http, sim.url, q + f"variant {i}")
        last = text.strip().splitlines()[-1]
        m = re.fullmatch(r"ANSWER: ([A-Z])", last)
        assert m, text
        answers.add(m.group(1))
    assert answers <= {"A", "B", "C"} and len(answers) > 1
    same = await reply(http, sim.url, q + "variant 3")
    assert same == await reply(http, sim.url, q + "variant 3", stream=True)
    paren = await reply(http, sim.url, "Pick:\n(E) x\n(F) y")
    assert paren.strip().splitlines()[-1] in ("ANSWER: E", "ANSWER: F")


def test_find_options() -> None:
    assert find_options("A. x\nB) y\n(C) z\nQ: not an option") == ["A", "B", "C"]
    assert find_options("no options here") == ["A", "B", "C", "D"]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
async def test_scripted(make_sim: Any, http: aiohttp.ClientSession, tmp_path: Path, fmt: str) -> None:
    rules = [
        {"pattern": r"capital of France", "reply": "The capital is Paris."},
        {"pattern": r"(?i)hello", "reply": "Hi there, how can I help?"},
        {"pattern": r"hello", "reply": "never reached"},
    ]
    path = tmp_path / f"script.{fmt}"
    if fmt == "json":
        path.write_text(json.dumps(rules))
    else:
        path.write_text("\n".join(json.dumps(r) for r in rules) + "\n")
    sim = await make_sim(policy="scripted", script=str(path), script_default="No idea.")
    assert await reply(http, sim.url, "What is the capital of France?") == "The capital is Paris."
    assert await reply(http, sim.url, "HELLO", stream=True) == "Hi there, how can I help?"
    assert await reply(http, sim.url, "something else") == "No idea."
    # streaming splits the reply into word tokens, one per chunk
    async with http.post(
        f"{sim.url}/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "hello"}], "stream": True},
        headers={"X-Request-Id": "s1"},
    ) as r:
        await r.read()
    assert list(sim.truth["s1"].chunk_tokens) == [1, 1, 1, 1, 1, 1]
    # max_tokens truncates a scripted reply
    assert await reply(http, sim.url, "hello", max_tokens=2) == "Hi there, "


async def test_scripted_matches_last_user_message(make_sim: Any, http: aiohttp.ClientSession) -> None:
    sim = await make_sim(policy="scripted", script_rules=[{"pattern": "^two$", "reply": "matched"}])
    body = {
        "messages": [
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "two"}]},
        ]
    }
    async with http.post(f"{sim.url}/v1/chat/completions", json=body) as r:
        assert (await r.json())["choices"][0]["message"]["content"] == "matched"
    async with http.post(f"{sim.url}/v1/completions", json={"prompt": "two"}) as r:
        assert (await r.json())["choices"][0]["text"] == "matched"
