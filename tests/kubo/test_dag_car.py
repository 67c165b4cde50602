"""Whole DAGs in and out of Kubo as CARs (`dag/export`, `dag/import`) against
a fake node speaking Kubo's wire format: streamed chunks, cut and corrupt
exports, the multipart upload, pin errors and time limits."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from chalicelib.cold.car import CarReader, encode_header, encode_section
from chalicelib.kubo.client import BadExport, KuboClient
from chalicelib.kubo.errors import KuboServerError, KuboUnavailable
from tests.support.fake_kubo import sample_car


def export_all(client: KuboClient, cid: str, seconds: float = 10.0) -> list[bytes]:
    chunks: list[bytes] = []
    with client.dag_export(cid, seconds=seconds, chunk_bytes=1024) as export:
        for chunk in export:
            chunks.append(chunk)
    return chunks


def section_ends(car: bytes) -> list[int]:
    """Where each block's section ends in the CAR."""
    return [block.offset + block.length for block in CarReader().blocks([car])]


# -- dag/export --------------------------------------------------------------


def test_export_streams_the_car_in_chunks_and_indexes_every_block(kubo, client):
    # given a node holding a DAG of a root and five leaves of 3,000 bytes
    root, car, cids = sample_car(leaves=5, leaf_bytes=3000)
    kubo.add_car(root, car, held=True)

    # when it is exported
    chunks: list[bytes] = []
    with client.dag_export(root, seconds=10, chunk_bytes=1024) as export:
        for chunk in export:
            chunks.append(chunk)

    # then the CAR came in many chunks, whole, and every block is indexed where it is
    assert len(chunks) > 5 and max(map(len, chunks)) <= 1024
    assert b"".join(chunks) == car
    assert export.complete and export.car_bytes == len(car)
    for block in CarReader().blocks([car]):
        entry = export.index.lookup(block.cid)
        assert entry is not None and (entry.offset, entry.length) == (block.offset, block.length)
    assert len(export.index) == len(cids)
    # asked offline, with Kubo's own timeout
    assert kubo.calls[0].query == f"arg={root}&offline=true&timeout=10.000s"


def test_export_of_a_cid_the_node_lacks_fails_before_any_byte(kubo, client):
    # given a DAG the node does not hold
    root, car, _ = sample_car()
    kubo.add_car(root, car)

    # when it is exported, then Kubo's error comes at once
    with pytest.raises(KuboServerError, match="could not find"):
        client.dag_export(root, seconds=5)


def test_an_export_cut_between_sections_is_told_by_the_blocks_it_lacks(kubo, client):
    # given an export that Kubo ends after the root and one leaf, its error in the trailer
    root, car, cids = sample_car(leaves=3)
    kubo.add_car(root, car, held=True)
    kubo.cut_export(root, after_bytes=section_ends(car)[1])

    # when it is exported, then every chunk sent arrives, and then the error names a missing leaf
    received: list[bytes] = []
    with pytest.raises(BadExport, match=f"without 2 block.*first {cids[2]}"):
        with client.dag_export(root, seconds=5, chunk_bytes=1024) as export:
            received.extend(export)
    assert b"".join(received) == car[: section_ends(car)[1]]
    assert not export.complete


def test_an_export_cut_inside_a_section_is_truncated(kubo, client):
    # given an export cut in the middle of the last leaf
    root, car, _ = sample_car(leaves=3)
    kubo.add_car(root, car, held=True)
    kubo.cut_export(root, after_bytes=len(car) - 10)

    # when it is exported, then it is refused as cut
    with pytest.raises(BadExport, match="cut"):
        export_all(client, root)


def test_an_export_with_a_corrupt_block_is_refused(kubo, client):
    # given a node whose copy of a leaf has one byte changed
    root, car, _ = sample_car(leaves=2)
    corrupt = car[:-1] + bytes([car[-1] ^ 1])
    kubo.add_car(root, corrupt, held=True)

    # when it is exported, then the block does not verify
    with pytest.raises(BadExport, match="do not hash to its CID"):
        export_all(client, root)


def test_an_export_of_another_root_is_refused(kubo, client):
    # given a node answering an export of one CID with another DAG's CAR
    asked, _, _ = sample_car(seed="asked")
    _, other_car, _ = sample_car(seed="other")
    kubo.add_car(asked, other_car, held=True)

    # when it is exported, then the header's root gives it away
    with pytest.raises(BadExport, match="roots"):
        export_all(client, asked)


def test_an_export_that_stops_coming_runs_out_of_time(kubo, client):
    # given an export that stalls after its first section
    root, car, _ = sample_car(leaves=3)
    kubo.add_car(root, car, held=True)
    kubo.stall_export(root, after_bytes=section_ends(car)[0])

    # when it is exported within half a second, then it is given up as unavailable
    with pytest.raises(KuboUnavailable, match="ran out of time"):
        export_all(client, root, seconds=0.5)


def test_what_a_node_pinned_can_be_exported(kubo, client):
    # given a DAG some provider has, pinned through pin/add
    root, car, _ = sample_car()
    kubo.add_car(root, car)
    client.pin_add(root, stall_seconds=2)

    # when it is exported, then it is the whole CAR
    assert b"".join(export_all(client, root)) == car


# -- dag/import --------------------------------------------------------------


def test_import_uploads_the_car_as_one_streamed_multipart_file_and_pins_its_root(kubo, client):
    # given a CAR, read in chunks
    root, car, cids = sample_car(leaves=4)
    chunks = [car[at : at + 500] for at in range(0, len(car), 500)]

    # when it is imported
    imported = client.dag_import(iter(chunks), seconds=10)

    # then the root is pinned, with Kubo's counts
    assert imported.roots == (root,)
    assert (imported.blocks, imported.bytes) == (len(cids), sum(b.length for b in CarReader().blocks([car])))
    assert root in kubo.pinned
    # as one multipart file part, sent in chunked transfer encoding
    (call,) = kubo.calls_to("dag/import")
    assert call.query == "pin-roots=true&stats=true&timeout=10.000s"
    assert call.headers["transfer-encoding"] == "chunked"
    content_type = call.headers["content-type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    boundary = content_type.split("boundary=")[1].encode()
    head = (
        b"--" + boundary + b"\r\n"
        b'Content-Disposition: form-data; name="file"; filename="dag.car"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
    )
    assert call.body == head + car + b"\r\n--" + boundary + b"--\r\n"
    # and the node can export it again
    assert b"".join(export_all(client, root)) == car


def test_import_without_pinning_pins_nothing(kubo, client):
    # given a CAR
    root, car, _ = sample_car()

    # when it is imported with pin_roots=False
    imported = client.dag_import([car], seconds=5, pin_roots=False)

    # then no root is reported or pinned, and Kubo was told so
    assert imported.roots == () and imported.blocks == 4
    assert root not in kubo.pinned
    assert kubo.calls_to("dag/import")[0].flags["pin-roots"] == "false"


def test_a_root_that_cannot_be_pinned_raises_with_kubos_message(kubo, client):
    # given a CAR whose header names a root whose block it does not hold
    root, car, _ = sample_car()
    root_block, *leaves = CarReader().blocks([car])
    leaves_only = encode_header([root_block.cid]) + b"".join(encode_section(leaf.cid, leaf.data) for leaf in leaves)

    # when it is imported, then the pin error is raised, naming the root
    with pytest.raises(KuboServerError, match=f"could not pin 1 root.*{root}: block was not found"):
        client.dag_import([leaves_only], seconds=5)
    assert root not in kubo.pinned


def test_a_corrupt_car_is_refused_before_anything_is_pinned(kubo, client):
    # given a CAR with one byte of a leaf changed
    root, car, _ = sample_car()
    corrupt = car[:-1] + bytes([car[-1] ^ 1])

    # when it is imported, then Kubo's error is raised and nothing is pinned
    with pytest.raises(KuboServerError, match="import failed"):
        client.dag_import([corrupt], seconds=5)
    assert kubo.pinned == set()


def test_an_import_the_node_does_not_answer_in_time_is_unavailable(kubo, client):
    # given a node that holds dag/import for two seconds
    _, car, _ = sample_car()
    kubo.delay("dag/import", 2.0)

    # when a CAR is imported within half a second, then it is given up
    with pytest.raises(KuboUnavailable):
        client.dag_import([car], seconds=0.5)


def test_an_upload_still_running_at_the_deadline_is_given_up(kubo, client):
    # given chunks that come slower than the time allowed
    _, car, _ = sample_car()

    def slow_chunks() -> Iterator[bytes]:
        yield car[:100]
        time.sleep(0.3)
        yield car[100:]

    # when they are imported within 0.1 s, then the upload stops, unavailable
    with pytest.raises(KuboUnavailable, match="not sent within"):
        client.dag_import(slow_chunks(), seconds=0.1)


# -- links -------------------------------------------------------------------


def test_links_are_read_from_dag_pb_and_dag_cbor_and_other_codecs_are_refused():
    import dag_cbor
    from multiformats import CID

    from chalicelib.cold.cids import cid_from_bytes
    from chalicelib.kubo.dag_links import MalformedBlock, UnsupportedCodec, links_of

    # given a DAG's CIDs and a dag-cbor block linking to two of them, deep in its value
    root, car, cids = sample_car(leaves=2)
    cbor = dag_cbor.encode({"a": [CID.decode(cids[1].binary)], "b": {"c": CID.decode(cids[2].binary), "d": 1}})
    cbor_cid = cid_from_bytes(b"\x01\x71" + cids[0].binary[2:])  # the codec is all links_of reads

    # when their links are read, then both codecs give them
    assert sorted(c.binary for c in links_of(cbor_cid, cbor)) == sorted(c.binary for c in cids[1:])
    root_block = next(iter(CarReader().blocks([car])))
    assert links_of(cids[0], root_block.data) == cids[1:]
    # and a codec whose links cannot be read, or a block that is not dag-pb, is refused
    with pytest.raises(UnsupportedCodec):
        links_of(cid_from_bytes(b"\x01\x80\x04" + cids[0].binary[2:]), b"{}")
    with pytest.raises(MalformedBlock):
        links_of(cids[0], b"\x12\x05\x0a\x03abc")
