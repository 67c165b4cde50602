"""The stack's processes: stopping a child, and what Linux's /proc tells
about others (who holds a lock on a file, and what a process runs), used to
name a leftover process by its pid."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def stop_child(process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM a running child, SIGKILL after `timeout`; waits for it either way."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def lock_holder(path: Path) -> int | None:
    """The pid of a process holding a lock (flock or fcntl) on `path`, if any."""
    try:
        status = path.stat()
        table = Path("/proc/locks").read_text(encoding="ascii")
    except OSError:
        return None
    wanted = (os.major(status.st_dev), os.minor(status.st_dev), status.st_ino)
    # "1: POSIX  ADVISORY  WRITE 12472 fe:00:2147207 0 EOF" (a "->" marks a
    # waiter, which holds nothing).
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == "->":
            continue
        major, minor, inode = fields[5].split(":")
        if (int(major, 16), int(minor, 16), int(inode)) == wanted:
            return int(fields[4])
    return None


def command_line(pid: int) -> str | None:
    """What process `pid` runs (its arguments, space-separated); None if it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") or None
