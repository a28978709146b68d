"""The watchdog of one managed server: when evalscope dies without stopping it, stop the server's group.

``python -m evalscope.servers.guard OWNER_PID PGID GRACE_S`` is started (in its own session) right after the
server. A clean run stops the server itself and then kills this guard by its PID. If the owner is gone first
(``kill -9``, a second Ctrl-C that exits at once, a crash), the guard sends SIGTERM to the server's process
group, waits ``GRACE_S`` seconds and sends SIGKILL, so no server outlives the run that started it. It also
exits by itself as soon as the group no longer exists. Standard library only: it must start fast.
"""

from __future__ import annotations

import os
import signal
import sys
import time

POLL_S = 0.25


def group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in group ``pgid``. Zombies count as gone: an orphan's zombie
    stays in its group until PID 1 reaps it, and PID 1 of a container may never do that."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        entries = os.listdir("/proc")
    except OSError:
        return True  # no /proc (macOS): the group exists
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        rest = stat[stat.rfind(")") + 2 :].split()
        # rest: state, ppid, pgrp, ...
        if len(rest) > 2 and rest[2] == str(pgid) and rest[0] != "Z":
            return True
    return False


def _owner_alive(owner: int) -> bool:
    # The guard is the owner's child: when the owner dies, the guard is re-parented.
    return os.getppid() == owner


def stop_group(pgid: int, grace_s: float) -> None:
    """SIGTERM to the group, up to ``grace_s`` for it to go, then SIGKILL."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not group_alive(pgid):
            return
        time.sleep(POLL_S)
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> int:
    owner, pgid, grace = int(argv[0]), int(argv[1]), float(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # only the owner (or its death) stops us
    while True:
        if not group_alive(pgid):
            return 0
        if not _owner_alive(owner):
            stop_group(pgid, grace)
            return 0
        time.sleep(POLL_S)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
