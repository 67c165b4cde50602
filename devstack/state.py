"""The stack's state directory (`--state-dir`, `.dev` by default): its files,
and the lock that makes one running stack their only writer."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from devstack.proc import lock_holder

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE_DIR = REPO_ROOT / ".dev"

# The files written in the state directory (all mode 0600). local.env and
# aws.env are for people and tools (`source` them); service.env is the
# environment the service's handlers run with (read by `python -m
# devstack.worker`); stack.json describes the running stack and exists only
# while it runs; stack.lock is held (flock) by the running stack; kubo/ holds
# the embedded nodes' repos and logs.
LOCAL_ENV = "local.env"
AWS_ENV = "aws.env"
SERVICE_ENV = "service.env"
STACK_FILE = "stack.json"
STACK_FILE_VERSION = 1
LOCK_FILE = "stack.lock"
KUBO_DIR = "kubo"


class StateDirBusy(Exception):
    """Another process holds the state directory's lock."""

    def __init__(self, state_dir: Path, holder: int | None) -> None:
        super().__init__(f"{state_dir} is in use by pid {holder}")
        self.state_dir = state_dir
        self.holder = holder


class StateDirLock:
    """An exclusive flock on `<state_dir>/stack.lock`. The kernel drops it when
    the holder exits, however it exits: a lock file left by a crash is free."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / LOCK_FILE
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        """Take the lock at once, or raise StateDirBusy naming its holder."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            raise StateDirBusy(self.path.parent, lock_holder(self.path)) from None
        self._descriptor = descriptor

    def release(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
