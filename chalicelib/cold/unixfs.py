"""A DAG retrieved as a CAR, written out as it streams: a UnixFS file's bytes
or directory tree (`unpack`), or the verified CAR itself (`save_car`).

UnixFS is dag-pb nodes carrying a UnixFS `Data` message (file, directory,
HAMT-sharded directory, symlink) and raw leaves. A file's bytes are its
node's own `Data` then each child's bytes in link order, whatever the tree's
shape (Kubo's balanced and trickle layouts alike); `blocksizes` says how
many bytes each child holds, and is checked as the children are written.

The CAR's blocks are each verified against their CID (`CarReader`) and come,
from the service, in depth-first order: the order in which the content is
written. `Unpacker` follows that walk with a stack of the blocks it wants
next; a block that is not the one wanted comes early (another order) or is
wanted again later (the same chunk twice in a file: the CAR holds each
block once), so it is kept aside by the `Output` (on disk: a spill file)
until wanted. Directory, shard and symlink blocks are kept too (a whole
directory can appear twice); the bytes of a file node already written are
copied from where they were written instead. Memory therefore holds the
stack and one small record per block, never the blocks.

Nothing is at the target until everything is verified and complete: the
CLI's `Output` (cli/disk_output.py) writes beside it and renames at `commit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Protocol

from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import Block, CarReader
from chalicelib.cold.cids import Cid, CidError, cid_from_bytes
from chalicelib.cold.protobuf import ProtobufError, protobuf_fields
from chalicelib.cold.varints import VarintError, decode_varint
from chalicelib.kubo.dag_links import DAG_PB, IDENTITY, RAW, DagCompleteness

# A HAMT shard's fanout: a power of two; Kubo's is 256. Larger would make the
# hex prefix of its link names longer than any implementation writes.
MAX_FANOUT = 4096

EntryPath = tuple[str, ...]  # the root is ()


class UnixfsError(ValueError):
    """Content that cannot be written as UnixFS by this reader."""


class NotUnixfs(UnixfsError):
    """A DAG of another kind (dag-cbor, a dag-pb node without UnixFS data)."""


class MalformedUnixfs(UnixfsError):
    pass


class UnsupportedUnixfs(UnixfsError):
    pass


class UnsafeName(UnixfsError):
    """A directory entry's name that would leave its directory or clash with another."""


class IncompleteDag(UnixfsError):
    """The CAR ended before a block the content needs."""


class WrongRoot(UnixfsError):
    pass


class Kind(IntEnum):
    RAW = 0
    DIRECTORY = 1
    FILE = 2
    METADATA = 3
    SYMLINK = 4
    HAMT_SHARD = 5


@dataclass(frozen=True)
class Link:
    cid: Cid
    name: str


@dataclass(frozen=True)
class Node:
    kind: Kind
    links: tuple[Link, ...] = ()
    data: bytes = b""  # a file node's own bytes (before its children's), a symlink's target
    blocksizes: tuple[int, ...] = ()
    filesize: int | None = None
    fanout: int | None = None


# -- decoding ------------------------------------------------------------------


def decode_node(cid: Cid, block: bytes) -> Node:
    """The UnixFS node of a verified block; a raw block is a file of its bytes."""
    if cid.codec == RAW:
        return Node(Kind.FILE, data=block)
    if cid.codec != DAG_PB:
        raise NotUnixfs(f"{cid} has codec {cid.codec:#x}: UnixFS is dag-pb and raw blocks")
    try:
        links, data = _pb_node(block)
        if data is None:
            raise NotUnixfs(f"{cid} is a dag-pb node without UnixFS data")
        node = _unixfs_node(links, data)
    except (ProtobufError, CidError, UnicodeDecodeError) as error:
        raise MalformedUnixfs(f"{cid} is not a UnixFS node: {error}") from error
    _check_sizes(cid, node)
    return node


def _pb_node(block: bytes) -> tuple[tuple[Link, ...], bytes | None]:
    """PBNode: Data (field 1) and Links (field 2: Hash 1, Name 2)."""
    links = []
    data = None
    for number, _wire, value in protobuf_fields(block):
        if number == 1 and isinstance(value, bytes):
            data = value
        elif number == 2 and isinstance(value, bytes):
            links.append(_pb_link(value))
    return tuple(links), data


def _pb_link(encoded: bytes) -> Link:
    cid = None
    name = ""
    for number, _wire, value in protobuf_fields(encoded):
        if number == 1 and isinstance(value, bytes):
            cid = cid_from_bytes(value)
        elif number == 2 and isinstance(value, bytes):
            name = value.decode()
    if cid is None:
        raise ProtobufError("a link without a hash")
    return Link(cid, name)


def _unixfs_node(links: tuple[Link, ...], encoded: bytes) -> Node:
    """UnixFS Data: Type 1, Data 2, filesize 3, blocksizes 4 (plain or packed), fanout 6."""
    kind = -1
    data = b""
    filesize = fanout = None
    blocksizes: list[int] = []
    for number, wire, value in protobuf_fields(encoded):
        if number == 4:
            blocksizes += [value] if isinstance(value, int) else _packed_varints(value)
        elif number == 2 and isinstance(value, bytes):
            data = value
        elif wire != 0 or not isinstance(value, int):
            continue
        elif number == 1:
            kind = value
        elif number == 3:
            filesize = value
        elif number == 6:
            fanout = value
    try:
        return Node(Kind(kind), links, data, tuple(blocksizes), filesize, fanout)
    except ValueError:
        raise ProtobufError(f"UnixFS type {kind} is none of {', '.join(str(k.value) for k in Kind)}") from None


def _packed_varints(encoded: bytes) -> list[int]:
    values = []
    at = 0
    try:
        while at < len(encoded):
            value, at = decode_varint(encoded, at)
            values.append(value)
    except VarintError as error:
        raise ProtobufError(f"packed blocksizes: {error}") from error
    return values


def _check_sizes(cid: Cid, node: Node) -> None:
    """A file node's `blocksizes` pairs with its links; `filesize`, when
    given, is its own bytes and its children's."""
    if node.kind not in (Kind.FILE, Kind.RAW):
        return
    if len(node.blocksizes) != len(node.links):
        raise MalformedUnixfs(f"{cid}: {len(node.links)} links but {len(node.blocksizes)} blocksizes")
    if node.filesize is not None and node.filesize != len(node.data) + sum(node.blocksizes):
        raise MalformedUnixfs(
            f"{cid}: filesize {node.filesize} is not its {len(node.data)} bytes"
            f" and its children's {sum(node.blocksizes)}"
        )


def _entry_name(name: str, directory: Cid) -> str:
    if name in ("", ".", "..") or any(bad in name for bad in "/\\\x00"):
        raise UnsafeName(f"directory {directory} has an entry named {name!r}: refused (it would not stay inside)")
    return name


# -- the walk ---------------------------------------------------------------------


class Output(Protocol):
    """Where `Unpacker` writes. Paths are relative to the target, () being the target itself."""

    def keep(self, cid: Cid, block: bytes) -> None:
        """Holds a block until `find` asks for it (a second keep of a CID changes nothing)."""

    def find(self, cid: Cid) -> bytes | None: ...

    def directory(self, path: EntryPath) -> None: ...

    def begin_file(self, path: EntryPath) -> None: ...

    def write(self, data: bytes) -> None:
        """The next bytes of the file begun last."""

    def copy(self, source: EntryPath, start: int, length: int) -> None:
        """Writes again `length` bytes already written at `start` in file `source`."""

    def end_file(self) -> None: ...

    def symlink(self, path: EntryPath, target: str) -> None: ...


class _Role(Enum):
    ENTRY = "entry"  # the root or a directory's entry: a file, directory or symlink
    PART = "part"  # a file node under a file
    SHARD = "shard"  # a HAMT directory's sub-shard: more of the same directory's entries


@dataclass(frozen=True)
class _Want:
    cid: Cid
    path: EntryPath
    role: _Role
    size: int | None = None  # a part's bytes, as its parent's blocksizes say


@dataclass(frozen=True)
class _PartEnd:
    cid: Cid
    path: EntryPath
    start: int
    size: int | None


@dataclass(frozen=True)
class _FileEnd:
    path: EntryPath


class Unpacker:
    """Feed it the verified blocks of `root`'s DAG, in any order, then `close()`."""

    def __init__(self, root: Cid, output: Output) -> None:
        self._out = output
        self._stack: list[_Want | _PartEnd | _FileEnd] = [_Want(root, (), _Role.ENTRY)]
        # key -> (file, offset, length) of the bytes of every file node written
        self._written: dict[bytes, tuple[EntryPath, int, int]] = {}
        self._paths: set[EntryPath] = set()
        self._offset = 0  # in the file being written
        self.kind: Kind | None = None  # the root's
        self.files = 0
        self.directories = 0
        self.bytes_written = 0
        self._drain()  # an identity root needs no block

    def feed(self, cid: Cid, block: bytes) -> None:
        top = self._stack[-1] if self._stack else None
        if isinstance(top, _Want) and top.cid.key == cid.key:
            self._stack.pop()
            self._visit(top, block)
            self._drain()
        elif cid.hash_code != IDENTITY and cid.key not in self._written:
            self._out.keep(cid, block)

    def close(self) -> None:
        """Raises IncompleteDag unless every block the content needs has come."""
        wanted = [item.cid for item in self._stack if isinstance(item, _Want)]
        if wanted:
            raise IncompleteDag(
                f"the CAR ended without block {wanted[-1]}, which the content needs"
                + (f" ({len(wanted) - 1} more known to be missing)" if len(wanted) > 1 else "")
            )

    def _drain(self) -> None:
        """Walks on while the next block wanted is at hand."""
        while self._stack:
            item = self._stack[-1]
            if isinstance(item, _PartEnd):
                self._stack.pop()
                self._part_end(item)
            elif isinstance(item, _FileEnd):
                self._stack.pop()
                self._out.end_file()
            elif item.cid.key in self._written:
                self._stack.pop()
                self._repeat(item)
            else:
                block = item.cid.digest if item.cid.hash_code == IDENTITY else self._out.find(item.cid)
                if block is None:
                    return
                self._stack.pop()
                self._visit(item, block)

    def _visit(self, item: _Want, block: bytes) -> None:
        node = decode_node(item.cid, block)
        if item.path == () and item.role is _Role.ENTRY:
            self.kind = node.kind
        if item.role is _Role.PART:
            self._part(item, node)
            return
        if node.kind in (Kind.FILE, Kind.RAW) and item.role is _Role.ENTRY:
            self._begin_file(item.path)
            self._stack.append(_FileEnd(item.path))
            self._part(item, node)
            return
        if item.cid.hash_code != IDENTITY:
            self._out.keep(item.cid, block)  # a directory or symlink may be linked again
        if node.kind is Kind.HAMT_SHARD:
            self._shard(item, node)
        elif item.role is _Role.SHARD:
            raise MalformedUnixfs(f"{item.cid}: a HAMT shard links to a {node.kind.name.lower()} as a sub-shard")
        elif node.kind is Kind.DIRECTORY:
            self._directory(item.path)
            self._entries(item, [(link.name, link.cid) for link in node.links])
        elif node.kind is Kind.SYMLINK:
            self._claim(item.path)
            self._out.symlink(item.path, _symlink_target(item.cid, node))
        else:
            raise UnsupportedUnixfs(f"{item.cid}: UnixFS {node.kind.name.lower()} nodes are not written by this reader")

    def _part(self, item: _Want, node: Node) -> None:
        if node.kind not in (Kind.FILE, Kind.RAW):
            raise MalformedUnixfs(f"{item.cid}: a file links to a {node.kind.name.lower()}")
        self._stack.append(_PartEnd(item.cid, item.path, self._offset, item.size))
        if node.data:
            self._out.write(node.data)
            self._offset += len(node.data)
            self.bytes_written += len(node.data)
        for link, size in zip(reversed(node.links), reversed(node.blocksizes), strict=True):
            self._stack.append(_Want(link.cid, item.path, _Role.PART, size))

    def _part_end(self, end: _PartEnd) -> None:
        length = self._offset - end.start
        if end.size is not None and length != end.size:
            raise MalformedUnixfs(f"{end.cid} holds {length} bytes where its parent's blocksizes say {end.size}")
        self._written[end.cid.key] = (end.path, end.start, length)

    def _repeat(self, item: _Want) -> None:
        """A file node written before, linked again: its bytes are copied."""
        source, start, length = self._written[item.cid.key]
        if item.role is _Role.SHARD or (item.size is not None and item.size != length):
            raise MalformedUnixfs(f"{item.cid} is linked to as what it is not")
        if item.role is _Role.ENTRY:
            self._begin_file(item.path)
        self._out.copy(source, start, length)
        self._offset += length
        self.bytes_written += length
        if item.role is _Role.ENTRY:
            self._out.end_file()

    def _begin_file(self, path: EntryPath) -> None:
        self._claim(path)
        self._out.begin_file(path)
        self._offset = 0
        self.files += 1

    def _directory(self, path: EntryPath) -> None:
        self._claim(path)
        self._out.directory(path)
        self.directories += 1

    def _claim(self, path: EntryPath) -> None:
        if path in self._paths:
            raise UnsafeName(f"two entries named {'/'.join(path)!r}: refused")
        self._paths.add(path)

    def _entries(self, item: _Want, entries: list[tuple[str, Cid]]) -> None:
        for name, cid in reversed(entries):
            self._stack.append(_Want(cid, (*item.path, _entry_name(name, item.cid)), _Role.ENTRY))

    def _shard(self, item: _Want, node: Node) -> None:
        """A HAMT directory: each link's name is the hex of its hash slot, then
        the entry's name; a link named by the slot alone is a sub-shard."""
        fanout = node.fanout or 0
        if not 1 < fanout <= MAX_FANOUT or fanout & (fanout - 1):
            raise MalformedUnixfs(f"{item.cid}: HAMT fanout {fanout} is not a power of two up to {MAX_FANOUT}")
        if item.role is _Role.ENTRY:
            self._directory(item.path)
        prefix = len(f"{fanout - 1:X}")
        entries: list[tuple[str | None, Cid]] = []
        for link in node.links:
            if len(link.name) == prefix:
                entries.append((None, link.cid))
            elif len(link.name) > prefix:
                entries.append((link.name[prefix:], link.cid))
            else:
                raise MalformedUnixfs(f"{item.cid}: HAMT link name {link.name!r} is shorter than its slot")
        for name, cid in reversed(entries):
            if name is None:
                self._stack.append(_Want(cid, item.path, _Role.SHARD))
            else:
                self._stack.append(_Want(cid, (*item.path, _entry_name(name, item.cid)), _Role.ENTRY))


def _symlink_target(cid: Cid, node: Node) -> str:
    try:
        target = node.data.decode()
    except UnicodeDecodeError as error:
        raise MalformedUnixfs(f"symlink {cid}: its target is not UTF-8") from error
    if not target or "\x00" in target:
        raise MalformedUnixfs(f"symlink {cid}: empty target or one with a NUL")
    return target


# -- from a CAR ---------------------------------------------------------------------


def check_unixfs_root(root: Cid) -> None:
    """NotUnixfs for a CID whose codec is not UnixFS's, before anything is fetched."""
    if root.codec not in (DAG_PB, RAW):
        raise NotUnixfs(f"{root} has codec {root.codec:#x}, not UnixFS (dag-pb or raw)")


def car_blocks(chunks: Iterable[bytes], root: Cid) -> Iterator[Block]:
    """The blocks of a CAR whose one root is `root`, each verified against its CID."""
    reader = CarReader()
    checked = False
    for chunk in chunks:
        blocks = reader.feed(chunk)
        if not checked and reader.header is not None:
            roots = reader.header.roots
            if [cid.key for cid in roots] != [root.key]:
                raise WrongRoot(f"the CAR's roots are {', '.join(map(str, roots)) or 'none'}, not {root}")
            checked = True
        yield from blocks
    reader.close()


def unpack(
    chunks: Iterable[bytes], root: Cid, output: Output, on_block: Callable[[Block], None] | None = None
) -> Unpacker:
    """Writes the UnixFS content of `root` from its CAR's chunks into `output`."""
    unpacker = Unpacker(root, output)
    for block in car_blocks(chunks, root):
        unpacker.feed(block.cid, block.data)
        if on_block is not None:
            on_block(block)
    unpacker.close()
    return unpacker


def save_car(
    chunks: Iterable[bytes], root: Cid, output: Output, on_block: Callable[[Block], None] | None = None
) -> int:
    """Writes the CAR itself as file () of `output` once each chunk's blocks are
    verified, and checks that it holds every block the DAG links to (any codec
    `dag_links` reads). Returns the number of blocks."""
    completeness = DagCompleteness([root], BlockIndex())
    blocks = 0
    output.begin_file(())

    def written() -> Iterator[bytes]:
        for chunk in chunks:
            output.write(chunk)
            yield chunk

    for block in car_blocks(written(), root):
        completeness.add(block.cid, block.offset, block.data)
        blocks += 1
        if on_block is not None:
            on_block(block)
    output.end_file()
    missing = completeness.missing
    if missing:
        raise IncompleteDag(f"the CAR lacks {len(missing)} block(s) its DAG links to, e.g. {missing[0]}")
    return blocks
