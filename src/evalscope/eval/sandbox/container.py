"""Optional container backend: ``docker``/``podman run --rm --network none`` with limits.

Used only when asked for (``Sandbox(isolation="container")``) and only when a daemon answers; otherwise it
raises :class:`SandboxUnavailableError` saying which engine was tried and what it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shutil
import time
import uuid

from evalscope.errors import SandboxUnavailableError
from evalscope.eval.sandbox.core import ExecResult, SandboxLimits, Status


class ContainerBackend:
    """Runs each program in a throw-away container (no network, read-only root, tmpfs /tmp, limits)."""

    def __init__(
        self, image: str, limits: SandboxLimits, engines: tuple[str, ...] = ("docker", "podman")
    ) -> None:
        self.image = image
        self.limits = limits
        self.engines = engines
        self.engine: str | None = None

    async def check(self, timeout_s: float = 5.0) -> str:
        """Find an engine whose daemon answers ``info``; raise with every engine's answer otherwise."""
        answers: list[str] = []
        for name in self.engines:
            path = shutil.which(name)
            if path is None:
                answers.append(f"{name}: not installed")
                continue
            try:
                proc = await asyncio.create_subprocess_exec(
                    path,
                    "info",
                    "--format",
                    "{{json .ServerVersion}}",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
            except (TimeoutError, OSError) as e:
                with contextlib.suppress(Exception):
                    proc.kill()
                    await proc.wait()
                answers.append(f"{name}: {type(e).__name__} {e}")
                continue
            if proc.returncode == 0:
                self.engine = path
                return path
            msg = (err or out).decode(errors="replace").strip().splitlines()
            answers.append(f"{name}: {msg[-1] if msg else f'exit {proc.returncode}'}")
        raise SandboxUnavailableError(
            "container backend requested but no container daemon answers (" + "; ".join(answers) + ")",
            "start the docker or podman daemon, or use the default process sandbox",
        )

    async def run(self, program: str, timeout_s: float) -> ExecResult:
        if self.engine is None:
            await self.check()
        assert self.engine is not None
        lim = self.limits
        name = f"evalscope-sbx-{uuid.uuid4().hex[:12]}"
        cpu = lim.cpu_s if lim.cpu_s is not None else math.ceil(timeout_s) + 1
        args = [
            self.engine,
            "run",
            "--rm",
            "-i",
            "--name",
            name,
            "--network",
            "none",
            "--read-only",
            "--tmpfs",
            f"/tmp:rw,size={lim.tmpfs_mb}m",
            "--workdir",
            "/tmp",
            "--memory",
            f"{lim.memory_mb}m",
            "--pids-limit",
            str(lim.max_processes),
            "--cpus",
            "1",
            "--ulimit",
            f"cpu={cpu}",
            "--ulimit",
            f"fsize={lim.max_file_mb * 1024 * 1024}",
            "--cap-drop",
            "ALL",
            "--security-opt",
            "no-new-privileges",
            "--user",
            "65534:65534",
            "-e",
            "HOME=/tmp",
            "-e",
            "TMPDIR=/tmp",
            self.image,
            "python",
            "-",
        ]
        t0 = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as e:
            return ExecResult("sandbox_error", None, "", "", 0.0, error=str(e), isolation="container")
        timed_out = False
        try:
            out, err = await asyncio.wait_for(proc.communicate(program.encode()), timeout_s + 5.0)
        except TimeoutError:
            timed_out = True
            killer = await asyncio.create_subprocess_exec(
                self.engine,
                "kill",
                name,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await killer.wait()
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            out, err = await proc.communicate()
        cap = lim.max_output_bytes
        rc = proc.returncode
        status: Status
        if timed_out or rc == 152:  # 128 + SIGXCPU
            status = "timeout"
        elif rc == 0:
            status = "passed"
        elif rc == 125:  # the engine itself failed
            status = "sandbox_error"
        elif rc == 137 or b"MemoryError" in err[-2000:]:
            status = "oom"
        else:
            status = "failed"
        return ExecResult(
            status,
            rc,
            out[:cap].decode(errors="replace"),
            err[:cap].decode(errors="replace"),
            time.monotonic() - t0,
            truncated=len(out) > cap or len(err) > cap,
            error=err.decode(errors="replace")[-500:] if status == "sandbox_error" else None,
            isolation="container",
        )
