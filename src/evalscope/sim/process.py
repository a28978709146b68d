"""SimProcess: the simulator in a child process, for benchmarks and tests that need a separate CPU.

The config travels as a JSON file named on the command line and the child reports its port through a port
file (no parsing of stdout). The child is stopped by its PID only: SIGTERM, then SIGKILL if it does not exit.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from evalscope.sim.config import SimConfig


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
        self._tmpdir = tempfile.TemporaryDirectory(prefix="evalscope-sim-")
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
        with err_path.open("wb") as err_file:
            self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err_file)
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
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
