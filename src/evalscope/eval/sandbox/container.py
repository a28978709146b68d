"""Optional container backend: ``docker``/``podman run --rm --network none`` with limits.

Used only when asked for (``Sandbox(isolation="container")``) and only when a daemon answers; otherwise it
raises :class:`SandboxUnavailableError` saying which engine was tried and what it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import signal
import time
import uuid

from evalscope.errors import SandboxUnavailableError
from evalscope.eval.sandbox._io import read_capped as _read_capped
from evalscope.eval.sandbox.types import ExecResult, SandboxLimits, Status


class ContainerBackend:
    """Runs each program in a throw-away container (no network, read-only root, tmpfs /tmp, limits); a
    :class:`~evalscope.eval.sandbox.types.Backend`."""

    name = "container"

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

    async def run(self, program: str, timeout_s: float, stdin: bytes | None = None) -> ExecResult:
        """Run ``program``; with ``stdin`` the program goes on the command line (``python -c``) and ``stdin``
        is what it reads on fd 0, else the program itself is fed on stdin (``python -``)."""
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
            *(["-"] if stdin is None else ["-c", program]),
        ]
        feed = program.encode() if stdin is None else stdin
        t0 = time.monotonic()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=out_w,
                stderr=err_w,
                start_new_session=True,
            )
        except OSError as e:
            os.close(out_r)
            os.close(err_r)
            return ExecResult("sandbox_error", None, "", "", 0.0, error=str(e), isolation="container")
        finally:
            os.close(out_w)
            os.close(err_w)
        cap = lim.max_output_bytes
        out, err = bytearray(), bytearray()
        overflow = asyncio.Event()
        readers = [
            asyncio.create_task(_read_capped(out_r, cap, out, overflow)),
            asyncio.create_task(_read_capped(err_r, cap, err, overflow)),
        ]
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.write(feed)
            await proc.stdin.drain()
            proc.stdin.close()
        waiter = asyncio.create_task(proc.wait())
        overflow_wait = asyncio.create_task(overflow.wait())
        # Container start-up is not the program's time: 5 s of slack on the wall clock.
        done, _ = await asyncio.wait(
            {waiter, overflow_wait}, timeout=timeout_s + 5.0, return_when="FIRST_COMPLETED"
        )
        timed_out = over_cap = False
        if waiter not in done:
            over_cap = overflow_wait in done
            timed_out = not over_cap
            killer = await asyncio.create_subprocess_exec(
                self.engine,
                "kill",
                name,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )
            await killer.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        overflow_wait.cancel()
        await waiter
        _, pending = await asyncio.wait(readers, timeout=2.0)
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        rc = proc.returncode
        tail = bytes(err[-2000:])
        status: Status
        if timed_out or rc == 152:  # 128 + SIGXCPU
            status = "timeout"
        elif over_cap or overflow.is_set():
            status = "output_limit"
        elif rc == 0:
            status = "passed"
        elif rc == 125:  # the engine itself failed
            status = "sandbox_error"
        elif rc == 137 or b"MemoryError" in tail:
            status = "oom"
        else:
            status = "failed"
        stderr = err.decode(errors="replace")
        return ExecResult(
            status,
            rc,
            out.decode(errors="replace"),
            stderr,
            time.monotonic() - t0,
            truncated=overflow.is_set(),
            error=stderr[-500:] if status == "sandbox_error" else None,
            isolation="container",
        )
