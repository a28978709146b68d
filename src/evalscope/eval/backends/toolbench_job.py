"""The ToolBench-static job that the ThirdParty adapter runs in a subprocess: infer, then score, per domain.

``python -m evalscope.eval.backends.toolbench_job <job.json>``; the API key comes from the environment
(``EVALSCOPE_BACKEND_API_KEY``), never from the job file. For each domain it reads ``<data>/<domain>.json``
(ToolBench-static's public format: ``messages`` with system / user / assistant ReAct steps / ``function``
results, ``target`` the reference next step, ``tools`` the functions offered), asks the endpoint for the next
step with the functions in the OpenAI ``tools`` field, and writes, as the original does,
``<output>/<domain>/predictions.json`` (the items with ``predictions``) and ``metrics.json``, plus
``scores.jsonl`` (one scored step per line) that the adapter converts into our report.

A tool call is read back as ``Action: <name>`` / ``Action Input: <arguments>``; a text answer that is already a
ReAct step is kept as it is, any other text is taken as ``Finish`` with that text as the final answer.
Exit codes: 0 ok, 2 bad job or data, 3 endpoint unusable.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from evalscope.eval.backends.toolbench_score import aggregate, score_step

API_KEY_ENV = "EVALSCOPE_BACKEND_API_KEY"
DOMAINS = ("in_domain", "out_of_domain")


def openai_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """ToolBench function specs as OpenAI ``tools`` entries."""
    out = []
    for t in tools:
        fn = {"name": t["name"], "description": t.get("description", "")}
        fn["parameters"] = t.get("parameters") or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": fn})
    return out


def _split_react(text: str) -> tuple[str, str, str] | None:
    """(thought, action, arguments) of a ReAct step, or None when the text names no action."""
    if "Action:" not in text:
        return None
    head, _, rest = text.rpartition("Action:")
    action, _, args = rest.partition("Action Input:")
    thought = head.strip()
    thought = thought[len("Thought:") :].strip() if thought.startswith("Thought:") else thought
    return thought, action.strip(), args.strip() or "{}"


def openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation in OpenAI's shape: an assistant ReAct step becomes a ``tool_calls`` message and the
    ``function`` result after it a ``tool`` message answering that call's id."""
    out: list[dict[str, Any]] = []
    last_id: str | None = None
    for i, m in enumerate(messages):
        role, content = m.get("role"), m.get("content") or ""
        if role == "assistant":
            step = _split_react(content)
            if step is not None:
                thought, action, args = step
                last_id = f"call_{i}"
                call = {"id": last_id, "type": "function", "function": {"name": action, "arguments": args}}
                out.append({"role": "assistant", "content": thought or None, "tool_calls": [call]})
                continue
        if role == "function" and last_id is not None:
            out.append({"role": "tool", "tool_call_id": last_id, "content": content})
            last_id = None
            continue
        if role == "function":  # a result with no call before it: give it to the model as user text
            out.append({"role": "user", "content": content})
            continue
        out.append({"role": role, "content": content})
    return out


def prediction_text(text: str, tool_calls: list[dict[str, Any]] | None) -> str:
    """The reply as a ReAct step (see the module docstring)."""
    if tool_calls:
        fn = tool_calls[0].get("function") or {}
        return f"Action: {fn.get('name', '')}\nAction Input: {fn.get('arguments') or '{}'}"
    text = text.strip()
    if text.startswith(": "):
        text = text[2:]
    if "Action:" in text:
        return text
    if text in ("", ".", ","):
        return "none"
    return "Action: Finish\nAction Input: " + json.dumps({"return_type": "give_answer", "final_answer": text})


def load_domain(data_path: Path, domain: str, limit: int | None) -> list[dict[str, Any]]:
    path = data_path / f"{domain}.json" if data_path.is_dir() else data_path
    items = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of ToolBench-static items")
    for k, it in enumerate(items):
        if not isinstance(it, dict) or not {"messages", "target", "tools"} <= it.keys():
            raise ValueError(f"{path}: item {k} lacks messages/target/tools")
    return items[:limit] if limit is not None else items


async def infer(job: dict[str, Any], items: list[dict[str, Any]], domain: str) -> tuple[list[str], int]:
    """Predictions (ReAct text) for ``items`` and how many requests failed for good."""
    from evalscope.engine import Client, Request
    from evalscope.engine.preflight import preflight
    from evalscope.engine.retry import RetryPolicy, send_with_retry

    key = os.environ.get(API_KEY_ENV) or None
    sem = asyncio.Semaphore(int(job.get("concurrency") or 8))
    preds = ["none"] * len(items)
    failed = 0
    async with Client(
        job["api_url"], job.get("model") or "", api_key=key, stream=job["stream"], keep_text=True
    ) as c:
        await preflight(c, check_model=True)
        job["model"] = c.model

        async def one(k: int, it: dict[str, Any]) -> None:
            nonlocal failed
            params: dict[str, Any] = {"tools": openai_tools(it["tools"])}
            if job.get("temperature") is not None:
                params["temperature"] = job["temperature"]
            req = Request(
                request_id=f"toolbench-{domain}-{k}",
                messages=openai_messages(it["messages"]),
                max_tokens=job.get("max_tokens"),
                params=params,
            )
            async with sem:
                res = await send_with_retry(c.send, req, RetryPolicy())
            rec = res.record
            if not rec.ok:
                failed += 1
                print(f"{domain}[{k}] failed: {rec.error.kind if rec.error else 'error'}", flush=True)
                return
            preds[k] = prediction_text(rec.text or "", rec.tool_calls)

        await asyncio.gather(*(one(k, it) for k, it in enumerate(items)))
    return preds, failed


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Infer and score every domain; returns ``{domain: {"metrics", "steps", "failed"}}``."""
    data = Path(job["data_path"])
    out_dir = Path(job["output_dir"])
    eval_dir = Path(job.get("output_path") or out_dir)
    summary: dict[str, Any] = {}
    for domain in job.get("domains") or DOMAINS:
        items = load_domain(data, domain, job.get("limit"))
        t0 = time.monotonic()
        preds, failed = asyncio.run(infer(job, items, domain))
        d = out_dir / domain
        d.mkdir(parents=True, exist_ok=True)
        done = [{**it, "predictions": p} for it, p in zip(items, preds, strict=True)]
        (d / "predictions.json").write_text(json.dumps(done, indent=1, ensure_ascii=False), encoding="utf-8")
        scores = [
            score_step(p, it["target"], [t["name"] for t in it["tools"]])
            for it, p in zip(items, preds, strict=True)
        ]
        agg = aggregate(scores)
        e = eval_dir / domain
        e.mkdir(parents=True, exist_ok=True)
        (e / "metrics.json").write_text(json.dumps(agg.metrics, indent=2), encoding="utf-8")
        with (e / "scores.jsonl").open("w", encoding="utf-8") as f:
            for it, s in zip(items, scores, strict=True):
                f.write(json.dumps({"id": it.get("id"), **s.as_dict()}) + "\n")
        summary[domain] = {"metrics": agg.metrics, "steps": agg.steps, "kept": agg.kept, "failed": failed}
        took = time.monotonic() - t0
        print(
            f"{domain}: {len(items)} steps in {took:.2f}s, {failed} failed; {json.dumps(agg.metrics)}",
            flush=True,
        )
    (eval_dir / "summary.json").write_text(
        json.dumps({"model": job.get("model"), "domains": summary}, indent=2)
    )
    return summary


def main(argv: list[str]) -> int:
    from evalscope.errors import EvalscopeError

    if len(argv) != 1:
        print("usage: python -m evalscope.eval.backends.toolbench_job <job.json>", file=sys.stderr)
        return 2
    try:
        job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
        run_job(job)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", flush=True)
        return 2
    except EvalscopeError as exc:
        print(f"error: {exc}", flush=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
