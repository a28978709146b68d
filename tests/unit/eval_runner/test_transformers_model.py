"""``--backend transformers``: batching does not change answers, OOM halves the batch, stop sequences, the event
loop stays free, chat-template choice. On a tiny random-weight Llama (tests/tinymodel.py; skipped without torch)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from evalscope.errors import ConfigError
from evalscope.eval.models.base import Model
from evalscope.eval.models.transformers_model import TEMPLATES, TransformersModel, pick_chat_template

#: Prompts of very different lengths, so a batch of them is heavily left-padded.
PROMPTS = [
    "Hi",
    "Which planet is the largest in the solar system? A. Mars B. Jupiter C. Venus D. Mercury",
    "2+2?",
    "Explain, in one sentence, why the sky looks blue during the day and red at sunset. " * 3,
    "Name a colour.",
    "The quick brown fox jumps over the lazy dog. What animal jumps?",
    "ok",
    "List three prime numbers greater than ten, separated by commas, and nothing else at all please.",
]


def _messages(p: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": p}]


async def _answers(
    path: Path, batch_size: int, params: dict[str, Any], model: TransformersModel | None = None
) -> tuple[list[Any], TransformersModel]:
    m = model or TransformersModel(str(path), batch_size=batch_size)
    await m.start()
    try:
        gens = await asyncio.gather(
            *(m.generate(_messages(p), params, f"r{i}") for i, p in enumerate(PROMPTS))
        )
    finally:
        await m.aclose()
    return list(gens), m


def _key(gens: list[Any]) -> list[tuple[Any, ...]]:
    return [(g.text, g.finish_reason, g.prompt_tokens, g.completion_tokens, g.error) for g in gens]


@pytest.mark.timeout(300)
async def test_batch_size_1_and_8_give_the_same_answers(tiny_llama: Path) -> None:
    params = {"max_tokens": 12, "temperature": 0}
    one, m1 = await _answers(tiny_llama, 1, params)
    eight, m8 = await _answers(tiny_llama, 8, params)
    assert isinstance(m8, Model)
    assert m1.batches == len(PROMPTS)
    assert m8.batches < len(PROMPTS), "the concurrent requests were not gathered into batches"
    assert all(g.ok and g.text for g in one)
    assert _key(one) == _key(eight)
    g = eight[0]
    assert g.finish_reason == "length" and g.completion_tokens == 12 and g.latency_s and g.latency_s > 0
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_llama))
    text = tok.apply_chat_template(_messages(PROMPTS[0]), tokenize=False, add_generation_prompt=True)
    assert g.prompt_tokens == len(tok.encode(text, add_special_tokens=False))


@pytest.mark.timeout(300)
async def test_out_of_memory_halves_the_batch_size(tiny_llama: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    params = {"max_tokens": 6}
    base, _ = await _answers(tiny_llama, 1, params)
    m = TransformersModel(str(tiny_llama), batch_size=8)
    real = m._generate_batch
    sizes: list[int] = []

    def fake(batch: list[Any]) -> list[Any]:
        sizes.append(len(batch))
        if len(batch) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")
        return real(batch)

    monkeypatch.setattr(m, "_generate_batch", fake)
    gens, m = await _answers(tiny_llama, 8, params, model=m)
    assert m.batch_size == 2 and m.oom_cuts == 2
    assert sizes == [8, 4, 2, 2, 2, 2]
    assert _key(gens) == _key(base)
    assert m.stats().concurrency_cuts == 2


@pytest.mark.timeout(300)
async def test_other_errors_fail_the_batch_not_the_run(
    tiny_llama: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = TransformersModel(str(tiny_llama), batch_size=8)

    def boom(batch: list[Any]) -> list[Any]:
        raise RuntimeError("device-side assert triggered")

    monkeypatch.setattr(m, "_generate_batch", boom)
    gens, _ = await _answers(tiny_llama, 8, {"max_tokens": 4}, model=m)
    assert all(not g.ok and g.error.kind == "client" and "device-side" in g.error.message for g in gens)


@pytest.mark.timeout(300)
async def test_stop_sequence_cuts_the_answer(tiny_llama: Path) -> None:
    m = TransformersModel(str(tiny_llama), batch_size=4)
    await m.start()
    try:
        free = await m.generate(_messages(PROMPTS[1]), {"max_tokens": 16}, "a")
        text = free.text
        stop = text[len(text) // 2 : len(text) // 2 + 2]
        assert stop.strip(), text
        cut = await m.generate(_messages(PROMPTS[1]), {"max_tokens": 16, "stop": [stop]}, "b")
        bad = await m.generate(_messages(PROMPTS[1]), {"max_tokens": 4, "logit_bias": {"1": 5}}, "c")
    finally:
        await m.aclose()
    assert cut.finish_reason == "stop"
    assert cut.text == text[: text.find(stop)]
    assert 0 < (cut.completion_tokens or 0) < (free.completion_tokens or 0)
    assert not bad.ok and "logit_bias" in bad.error.message  # refused, not silently dropped


@pytest.mark.timeout(300)
async def test_generation_leaves_the_event_loop_free(tiny_llama: Path) -> None:
    m = TransformersModel(str(tiny_llama), batch_size=8)
    await m.start()
    ticks = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks
        while not stop:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(ticker())
    try:
        t0 = time.perf_counter()
        await asyncio.gather(
            *(m.generate(_messages(p), {"max_tokens": 24}, f"r{i}") for i, p in enumerate(PROMPTS))
        )
        wall = time.perf_counter() - t0
    finally:
        stop = True
        await t
        await m.aclose()
    # a blocked loop would tick about once; a free one ticks every 10 ms (loaded machine: allow a wide margin)
    assert ticks >= max(3, int(wall / 0.01 * 0.2)), (ticks, wall)


@pytest.mark.timeout(300)
async def test_closing_stops_a_long_batch_at_once(tiny_llama: Path) -> None:
    m = TransformersModel(str(tiny_llama), batch_size=8)
    await m.start()
    jobs = [
        asyncio.create_task(m.generate(_messages(p), {"max_tokens": 4000}, f"r{i}"))
        for i, p in enumerate(PROMPTS)
    ]
    while m.batches == 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    t0 = time.perf_counter()
    await m.aclose()  # 4000 tokens would take minutes here; the abort criterion ends it at the next token
    assert time.perf_counter() - t0 < 20
    done = await asyncio.wait_for(asyncio.gather(*jobs), 10)  # every waiting sample is answered
    assert all(not d.ok and d.error.kind == "cancelled" for d in done)


def test_chat_template_choice(tmp_path: Path) -> None:
    said: list[str] = []
    assert pick_chat_template("TOK", None, None, said.append) == "TOK" and not said
    assert pick_chat_template("TOK", None, "qwen", said.append) == "TOK"
    assert "superseded by the tokenizer's own chat template" in said[-1]
    assert pick_chat_template(None, None, "qwen", said.append) == TEMPLATES["chatml"]
    f = tmp_path / "t.jinja"
    f.write_text("{{ messages[0]['content'] }}")
    assert pick_chat_template("TOK", f, "llama3", said.append) == "{{ messages[0]['content'] }}"
    assert "superseded by --chat-template" in said[-1]
    with pytest.raises(ConfigError, match="no built-in template") as e:
        pick_chat_template(None, None, "chatglm3", said.append)
    assert "--chat-template FILE" in (e.value.hint or "")
    with pytest.raises(ConfigError, match="no chat template"):
        pick_chat_template(None, None, None, said.append)
