"""SimProcess: the simulator in a child process, for benchmarks and tests that need a separate CPU.

The config travels as a JSON file named on the command line and the child reports its port through a port
file (no parsing of stdout). The child is stopped by its PID only: SIGTERM, then SIGKILL if it does not exit.

The child dies with its parent, even after ``kill -9`` of the parent: it watches a lifeline pipe whose only
writer is the parent (EOF when the parent is gone, on every POSIX system), and on Linux it also asks for
SIGTERM at its parent's death (``PR_SET_PDEATHSIG``, only when started from the main thread: the signal
follows the thread that forked, and eval starts the simulator from an executor thread). An orphaned child
removes its temporary directory; directories left by a dead owner anyway are removed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from evalscope.sim.config import SimConfig

#: Environment variable through which a SimProcess tells its child about the lifeline:
#: ``<read fd>:<parent pid>:<1 if PR_SET_PDEATHSIG is wanted>:<the temporary directory it owns>``.
LIFELINE_ENV = "EVALSCOPE_SIM_LIFELINE"
_DIR_PREFIX = "evalscope-sim-"
_OWNER_FILE = "owner"
_STALE_UNOWNED_S = 24 * 3600  # a directory without an owner file (older versions) is stale after a day


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused PID from its owner."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _alive(pid: int, started: str | None) -> bool:
    """Whether process ``pid`` (started at ``started``, when known) still runs; a zombie counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge, keep the directory
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): the PID exists
    rest = stat[stat.rfind(")") + 2 :].split()
    if rest and rest[0] == "Z":
        return False
    return not (started and len(rest) > 19 and rest[19] != started)


def clean_stale_dirs(root: str | None = None) -> list[Path]:
    """Remove ``evalscope-sim-*`` directories (ours) whose owning process is dead; return what was removed."""
    base = Path(root or tempfile.gettempdir())
    removed: list[Path] = []
    uid = os.getuid() if hasattr(os, "getuid") else None
    try:
        candidates = list(base.glob(_DIR_PREFIX + "*"))
    except OSError:
        return removed
    for d in candidates:
        try:
            st = d.lstat()
            if not d.is_dir() or d.is_symlink() or (uid is not None and st.st_uid != uid):
                continue
            try:
                owner = (d / _OWNER_FILE).read_text().split()
            except FileNotFoundError:
                if time.time() - st.st_mtime < _STALE_UNOWNED_S:
                    continue
            else:
                if _alive(int(owner[0]), owner[1] if len(owner) > 1 else None):
                    continue
        except (OSError, ValueError, IndexError):
            continue
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def _set_pdeathsig(sig: int) -> None:
    """Linux: deliver ``sig`` to this process when its parent (thread) exits."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, sig)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def adopt_lifeline(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Callable[[], None]:
    """In the child: stop serving when the parent is gone. Returns what to run after serving ends.

    No-op (returns a no-op) when the process was not started by :class:`SimProcess`.
    """
    spec = os.environ.pop(LIFELINE_ENV, None)
    if not spec:
        return lambda: None
    fd_s, ppid_s, pdeath, owned = spec.split(":", 3)
    fd, ppid = int(fd_s), int(ppid_s)
    if pdeath == "1":
        _set_pdeathsig(signal.SIGTERM)

    def readable() -> None:
        try:
            data = os.read(fd, 64)
        except OSError:
            data = b""
        if not data:  # EOF: the parent closed its end or died
            loop.remove_reader(fd)
            stop()

    loop.add_reader(fd, readable)
    if os.getppid() != ppid:  # the parent died before we watched
        stop()

    def after() -> None:
        with contextlib.suppress(OSError):
            os.close(fd)
        if os.getppid() != ppid and owned:  # orphaned: nobody else will remove the directory
            shutil.rmtree(owned, ignore_errors=True)

    return after


class SimProcess:
    """Start ``python -m evalscope.sim`` on a free loopback port; use as a context manager.

    Args:
        cfg: simulator settings (defaults when None).
        host: interface for the child to bind.
        cpus: optional CPU set to pin the child to (``os.sched_setaffinity``), e.g. ``{0}``.
        startup_timeout: seconds to wait for ``/health``.
        loop: the child's event loop: ``auto`` (uvloop when installed), ``uvloop`` or ``asyncio``.
    """

    def __init__(
        self,
        cfg: SimConfig | None = None,
        host: str = "127.0.0.1",
        cpus: set[int] | None = None,
        startup_timeout: float = 20.0,
        loop: str = "auto",
    ) -> None:
        self.cfg = cfg if cfg is not None else SimConfig()
        self.host = host
        self.cpus = cpus
        self.startup_timeout = startup_timeout
        self.loop = loop
        self.port = 0
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self._lifeline: int | None = None  # write end of the pipe the child watches (parent-only)

    @property
    def url(self) -> str:
        """Base URL without ``/v1``."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """PID of the child process."""
        if self._proc is None:
            raise RuntimeError("SimProcess is not running")
        return self._proc.pid

    def start(self) -> SimProcess:
        """Spawn the child and wait until ``/health`` answers."""
        clean_stale_dirs()
        self._tmpdir = tempfile.TemporaryDirectory(prefix=_DIR_PREFIX)
        me = os.getpid()
        (Path(self._tmpdir.name) / _OWNER_FILE).write_text(f"{me} {_start_time(me) or ''}".strip())
        port_file = Path(self._tmpdir.name) / "port"
        # the config goes through a file: inline JSON could outgrow the command-line limit (script rules)
        cfg_file = Path(self._tmpdir.name) / "config.json"
        cfg_file.write_text(self.cfg.model_dump_json(), encoding="utf-8")
        cmd = [
            sys.executable,
            "-m",
            "evalscope.sim",
            "--host",
            self.host,
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--loop",
            self.loop,
            "--config-json",
            str(cfg_file),
        ]
        # stderr goes to a file, not a pipe: an unread pipe would block a chatty child
        err_path = Path(self._tmpdir.name) / "stderr"
        r, w = os.pipe()  # both ends non-inheritable: no other child of ours keeps the lifeline alive
        self._lifeline = w
        pdeath = "1" if threading.current_thread() is threading.main_thread() else "0"
        env = {**os.environ, LIFELINE_ENV: f"{r}:{me}:{pdeath}:{self._tmpdir.name}"}
        try:
            with err_path.open("wb") as err_file:
                self._proc = subprocess.Popen(
                    cmd, stdout=subprocess.DEVNULL, stderr=err_file, pass_fds=(r,), env=env
                )
        finally:
            os.close(r)
        if self.cpus and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(self._proc.pid, self.cpus)
        deadline = time.monotonic() + self.startup_timeout
        try:
            while True:
                if self._proc.poll() is not None:
                    err = err_path.read_text(errors="replace")
                    raise RuntimeError(f"simulator exited with {self._proc.returncode}: {err[-2000:]}")
                if time.monotonic() > deadline:
                    raise TimeoutError("simulator did not become healthy in time")
                if not self.port and port_file.exists():
                    text = port_file.read_text(encoding="utf-8").strip()
                    self.port = int(text) if text else 0
                if self.port and self._healthy():
                    return self
                time.sleep(0.02)
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1.0) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def _get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=30.0) as resp:
            return orjson.loads(resp.read())

    def fetch_truth(self, since: int | None = None, clear: bool = False) -> list[dict[str, Any]]:
        """The child's truth records (``GET /sim/truth``)."""
        query = []
        if since is not None:
            query.append(f"since={since}")
        if clear:
            query.append("clear=1")
        data: list[dict[str, Any]] = self._get_json("/sim/truth" + ("?" + "&".join(query) if query else ""))
        return data

    def fetch_stats(self, reset: bool = False) -> dict[str, Any]:
        """The child's counters (``GET /sim/stats``)."""
        data: dict[str, Any] = self._get_json("/sim/stats" + ("?reset=1" if reset else ""))
        return data

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the child by PID, kill it if it lingers, and reap it."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
            self.returncode = proc.returncode
            self._proc = None
        if self._lifeline is not None:
            with contextlib.suppress(OSError):
                os.close(self._lifeline)
            self._lifeline = None
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
