"""Ties the processes the stack starts to its life, however it ends.

The parent holds the write end of a pipe and never writes to it; each child
gets the read end (`child_options`) and, through `follow_parent`, a thread
blocked reading it. When the parent is gone - Ctrl-C, SIGTERM, a crash or
SIGKILL alike - the kernel closes the write end, the read returns EOF and the
child stops. Unlike PR_SET_PDEATHSIG this does not depend on which of the
parent's threads started the child (the worker supervisor restarts the worker
from a thread of its own), and it holds across re-parenting.

The stack's own parent (`make`) is not ours to change: `stop_with_parent`
asks the kernel for SIGTERM when it dies instead.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading
from collections.abc import Callable
from typing import Any

FD_VARIABLE = "DEVSTACK_LIFELINE_FD"
PR_SET_PDEATHSIG = 1

_pipe: tuple[int, int] | None = None
_pipe_lock = threading.Lock()


def child_options(env: dict[str, str] | None = None) -> dict[str, Any]:
    """Popen keyword arguments (`env`, `pass_fds`) that hand a child the lifeline."""
    global _pipe
    with _pipe_lock:
        if _pipe is None:
            # Both ends close on exec: only the children named here get the read end,
            # and no child ever holds the write end (it would keep the others alive).
            _pipe = os.pipe()
    read_end = _pipe[0]
    return {"env": {**(os.environ if env is None else env), FD_VARIABLE: str(read_end)}, "pass_fds": (read_end,)}


def follow_parent(on_parent_gone: Callable[[], None], grace_seconds: float = 5.0) -> None:
    """If this process was given a lifeline, call `on_parent_gone` (on a thread
    of its own) once the parent is gone, and exit with status 1 if the process
    is still running `grace_seconds` later."""
    given = os.environ.pop(FD_VARIABLE, None)  # not for our own children
    if given is None:
        return
    read_end = int(given)

    def watch() -> None:
        try:
            while os.read(read_end, 1):
                pass
        except OSError:
            pass
        deadline = threading.Timer(grace_seconds, os._exit, (1,))
        deadline.daemon = True  # a process that stops in time exits without waiting for it
        deadline.start()
        on_parent_gone()

    threading.Thread(target=watch, name="lifeline", daemon=True).start()


def set_parent_death_signal(signum: int) -> None:
    """Linux: the kernel sends `signum` to this process when the thread that started it ends."""
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def stop_with_parent() -> bool:
    """SIGTERM to this process when its parent dies; False if the parent is already gone."""
    parent = os.getppid()
    set_parent_death_signal(signal.SIGTERM)
    # The parent may have died before the request took effect: then no signal comes.
    return os.getppid() == parent
