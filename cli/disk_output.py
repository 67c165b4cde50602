"""Where `cli.pins get` writes a retrieved DAG: the `Output` of
chalicelib.cold.unixfs on disk, staged beside its target and renamed there
only once everything is verified and complete."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from chalicelib.cold.cids import Cid
from chalicelib.cold.unixfs import EntryPath

COPY_CHUNK = 1 << 20


class DiskOutput:
    """An `Output` under a staging path beside `target` (same file system, so
    `commit` is one rename), blocks kept aside in an anonymous spill file
    there. Used as a context manager: leaving it without `commit` removes
    everything it wrote. Symlinks are written as symlinks, their targets as
    the content says; nothing here follows one (every path is created once,
    fresh), so none can lead a write outside the target."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self._staging = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
        self._file: BinaryIO | None = None
        self._spill: BinaryIO | None = None
        self._kept: dict[bytes, tuple[int, int]] = {}
        self.spilled_bytes = 0

    def __enter__(self) -> DiskOutput:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close()
        if os.path.lexists(self._staging):
            if self._staging.is_dir() and not self._staging.is_symlink():
                shutil.rmtree(self._staging)
            else:
                self._staging.unlink()

    def _at(self, path: EntryPath) -> Path:
        return self._staging.joinpath(*path)

    def _close(self) -> None:
        for handle in (self._file, self._spill):
            if handle is not None:
                handle.close()
        self._file = self._spill = None

    def keep(self, cid: Cid, block: bytes) -> None:
        if cid.key in self._kept:
            return
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix=".spill-", dir=self.target.parent)
        offset = self._spill.seek(0, os.SEEK_END)
        self._spill.write(block)
        self._kept[cid.key] = (offset, len(block))
        self.spilled_bytes += len(block)

    def find(self, cid: Cid) -> bytes | None:
        where = self._kept.get(cid.key)
        if where is None or self._spill is None:
            return None
        self._spill.seek(where[0])
        return self._spill.read(where[1])

    def directory(self, path: EntryPath) -> None:
        self._at(path).mkdir()

    def begin_file(self, path: EntryPath) -> None:
        self._file = self._at(path).open("xb")

    def _current(self) -> BinaryIO:
        if self._file is None:
            raise RuntimeError("no file begun")
        return self._file

    def write(self, data: bytes) -> None:
        self._current().write(data)

    def copy(self, source: EntryPath, start: int, length: int) -> None:
        current = self._current()
        current.flush()  # the source may be this very file
        with self._at(source).open("rb") as copied:
            copied.seek(start)
            while length > 0:
                data = copied.read(min(length, COPY_CHUNK))
                if not data:
                    raise OSError(f"{'/'.join(source)} is shorter than what was written to it")
                current.write(data)
                length -= len(data)

    def end_file(self) -> None:
        self._current().close()
        self._file = None

    def symlink(self, path: EntryPath, target: str) -> None:
        os.symlink(target, self._at(path))

    @property
    def is_directory(self) -> bool:
        return self._staging.is_dir() and not self._staging.is_symlink()

    def commit(self) -> None:
        """Moves the content to `target`: an existing file there is replaced, a directory never."""
        self._close()
        if self.is_directory and os.path.lexists(self.target):
            raise FileExistsError(f"{self.target} exists: a directory is not written over anything")
        os.replace(self._staging, self.target)

    def open_result(self) -> BinaryIO:
        """The file written, before `commit` (to copy it elsewhere)."""
        self._close()
        return self._staging.open("rb")
