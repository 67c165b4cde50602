"""GET /ipfs/{cid}: a tenant's pinned content through the API, as the IPFS
Trustless Gateway serves it, from fake Kubo nodes and from archives in moto's
S3; every answer's bytes checked as a trustless client checks them."""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from chalice.test import Client

from chalicelib.cold.archive_repository import ArchivedCar, ArchiveHolder, ArchiveLease
from chalicelib.cold.archiver import archive_keys
from chalicelib.cold.block_index import BlockIndex
from chalicelib.cold.car import CarReader, write_car
from chalicelib.cold.cids import Cid, verify_block
from chalicelib.config import Settings
from chalicelib.pins.request_ids import created_ms_of
from chalicelib.storage.archive_repository import DynamoArchiveRepository
from chalicelib.wiring import Services
from tests.api.conftest import move_status
from tests.api.helpers import assert_failure, header
from tests.cold.dags import unixfs_file
from tests.cold.s3 import s3_client
from tests.conftest import PEER_A, PEER_B
from tests.support.api import Reply
from tests.support.fake_kubo import FakeKubo
from tests.support.openapi import load_document

BUCKET = "pinning-test-archives"
LIMIT = 64 * 1024
CAR = "application/vnd.ipld.car"
RAW = "application/vnd.ipld.raw"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The suite's settings with an archive bucket and a 64 KiB answer limit."""
    s3_client().create_bucket(Bucket=BUCKET)
    return replace(settings, archive_bucket=BUCKET, retrieval_max_bytes=LIMIT, retrieval_node_seconds=5)


@pytest.fixture
def nodes(services: Services) -> Iterator[dict[str, FakeKubo]]:
    """node-a and node-b of the suite's registry, answering as fake Kubo nodes."""
    services.__dict__["s3"] = s3_client()  # see tests/cold/s3.py
    fakes = {"node-a": FakeKubo(peer_id=PEER_A).start(), "node-b": FakeKubo(peer_id=PEER_B).start()}
    for node_id, fake in fakes.items():
        services.registry.register(node_id, fake.url, fake.peer_id, ["/ip4/203.0.113.9/tcp/4001"])
    yield fakes
    for fake in fakes.values():
        fake.stop()


@dataclass
class Dag:
    root: Cid
    blocks: list[tuple[Cid, bytes]]

    @property
    def cid(self) -> str:
        return str(self.root)

    @property
    def car(self) -> bytes:
        return b"".join(write_car([self.root], self.blocks))


def a_dag(size: int, seed: int = 1) -> Dag:
    """A UnixFS file of `size` bytes in 16 KiB chunks."""
    root, blocks = unixfs_file(random.Random(seed).randbytes(size), chunk=16 * 1024)
    return Dag(root, blocks)


def pinned(api: Any, services: Services, tenant_id: str, dag: Dag) -> str:
    """The tenant's request for the DAG, moved to pinned as a worker would; its id."""
    request_id: str = api.pin(dag.cid)["requestid"]
    move_status(services.store, tenant_id, request_id, "pinned")
    return request_id


def archived(
    services: Services, dag: Dag, request_id: str, tenant_id: str, *, car: bytes | None = None, **put: Any
) -> None:
    """The DAG's archive as the archiver leaves it: CAR and index in S3, recorded archived."""
    car = dag.car if car is None else car
    key = str(dag.root)
    repository = DynamoArchiveRepository(services.dynamo)
    repository.hold(ArchiveHolder(key, tenant_id, request_id))
    repository.take_lease(key, ArchiveLease("test", 2**62), now_ms=0)
    car_key, index_key = archive_keys(services.settings.archive_prefix, key)
    index = BlockIndex.from_blocks(CarReader(verify=False).blocks([car]))
    s3 = services.__dict__["s3"]
    s3.put_object(Bucket=BUCKET, Key=car_key, Body=car, **put)
    s3.put_object(Bucket=BUCKET, Key=index_key, Body=index.to_bytes())
    sha256 = hashlib.sha256(dag.car).hexdigest()  # what the archiver hashed as it uploaded
    assert repository.record_archived(key, "test", ArchivedCar(car_key, index_key, len(car), sha256, "", "", 0, 0))


def tampered(dag: Dag, block: int) -> bytes:
    """The DAG's CAR with one byte of a block changed (same length, so the index still fits)."""
    blocks = [
        (cid, data if n != block else bytes([data[0] ^ 1]) + data[1:]) for n, (cid, data) in enumerate(dag.blocks)
    ]
    return b"".join(write_car([dag.root], blocks))


def get(api: Any, cid: str, accept: str | None = CAR, method: str = "GET", **params: str) -> Reply:
    """A retrieval as a trustless client sends it; a JSON answer is checked against openapi.yaml."""
    headers = {"Authorization": f"Bearer {api.token}"}
    if accept is not None:
        headers["Accept"] = accept
    query = "&".join(f"{name}={value}" for name, value in params.items())
    path = f"/ipfs/{cid}" + (f"?{query}" if query else "")
    with Client(_app()) as client:
        response = client.http.request(method, path, headers=headers)
    reply = Reply(response.status_code, dict(response.headers), response.body or b"")
    documented(method, reply)
    return reply


def _app() -> Any:
    import app as app_module

    return app_module.app


def documented(method: str, reply: Reply) -> None:
    """The status is documented for the operation, with the body's media type (JSON bodies are Failures)."""
    operation = load_document()["paths"]["/ipfs/{cid}"][method.lower()]
    response = operation["responses"].get(str(reply.status)) or operation["responses"][f"{reply.status // 100}XX"]
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[-1]
        response = load_document()["components"]["responses"][name]
    media = (header(reply, "Content-Type") or "").split(";")[0]
    if "content" not in response or not reply.body:
        assert not reply.body, (reply.status, reply.body[:100])
        return
    assert media in response["content"], (reply.status, media)
    if media == "application/json":
        assert set(json.loads(reply.body)["error"]) <= {"reason", "details"}


def held_by_every_node(nodes, dag) -> None:
    for fake in nodes.values():
        fake.add_car(dag.cid, dag.car, held=True)


def car_blocks(body: bytes, root: Cid) -> dict[bytes, bytes]:
    """The CAR's blocks by key, each verified against its CID; its root checked."""
    reader = CarReader()
    blocks = {block.cid.key: block.data for block in reader.blocks([body])}
    assert reader.header is not None and [r.key for r in reader.header.roots] == [root.key]
    return blocks


# -- from a hot node -------------------------------------------------------------


def test_a_pinned_dag_comes_as_a_car_from_a_node_every_block_verifying(api, services, tenant_id, nodes):
    # given a pinned DAG of 40 KB that both nodes hold
    dag = a_dag(40_000)
    held_by_every_node(nodes, dag)
    pinned(api, services, tenant_id, dag)

    # when its owner asks for it as a CAR
    reply = get(api, dag.cid)

    # then the CAR holds every block of the DAG, each verified, with the gateway's headers
    assert reply.status == 200, reply.body[:200]
    assert car_blocks(reply.body, dag.root) == {cid.key: data for cid, data in dag.blocks}
    assert header(reply, "Content-Type") == f"{CAR}; version=1; order=dfs; dups=n"
    assert header(reply, "Content-Disposition") == f'attachment; filename="{dag.cid}.car"'
    assert header(reply, "X-Content-Type-Options") == "nosniff"
    assert header(reply, "Cache-Control") == "private, max-age=29030400, immutable"
    assert header(reply, "ETag") == f'W/"{dag.cid}.car.all"'
    assert header(reply, "Content-Location") == f"{dag.cid}?format=car"
    assert header(reply, "X-Served-From") == "hot"


def test_the_root_block_comes_raw_from_a_node(api, services, tenant_id, nodes):
    # given a pinned DAG a node holds
    dag = a_dag(40_000)
    nodes["node-a"].add_car(dag.cid, dag.car, held=True)
    nodes["node-b"].add_car(dag.cid, dag.car, held=True)
    pinned(api, services, tenant_id, dag)

    # when its root block is asked for raw, by format (and Accept)
    reply = get(api, dag.cid, accept=RAW, format="raw")

    # then the body is the root block, which hashes to the CID
    assert reply.status == 200
    assert reply.body == dag.blocks[0][1]
    verify_block(dag.root, reply.body)
    assert header(reply, "Content-Type") == RAW
    assert header(reply, "ETag") == f'"{dag.cid}.raw"'
    assert header(reply, "Content-Disposition") == f'attachment; filename="{dag.cid}.bin"'
    assert header(reply, "Content-Location") is None


def test_dag_scope_block_is_the_root_block_and_entity_of_a_file_the_whole_file(api, services, tenant_id, nodes):
    # given a pinned UnixFS file a node holds
    dag = a_dag(40_000)
    held_by_every_node(nodes, dag)
    pinned(api, services, tenant_id, dag)

    # when it is asked for with dag-scope=block and dag-scope=entity
    block = get(api, dag.cid, **{"dag-scope": "block"})
    entity = get(api, dag.cid, **{"dag-scope": "entity"})

    # then block is a CAR of the root block alone, entity the whole file
    assert car_blocks(block.body, dag.root) == {dag.root.key: dag.blocks[0][1]}
    assert len(car_blocks(entity.body, dag.root)) == len(dag.blocks)
    assert header(block, "ETag") == f'W/"{dag.cid}.car.block"'


def test_a_node_with_a_corrupt_copy_is_passed_over_for_one_that_verifies(api, services, tenant_id, nodes):
    # given a pinned DAG whose copy on one node has a corrupt leaf
    dag = a_dag(40_000)
    nodes["node-a"].add_car(dag.cid, tampered(dag, 2), held=True)
    nodes["node-b"].add_car(dag.cid, tampered(dag, 2), held=True)
    request_id = pinned(api, services, tenant_id, dag)
    pin = services.pins.get(tenant_id, request_id)
    nodes[pin.node_ids[1]].add_car(dag.cid, dag.car, held=True)

    # when it is asked for
    reply = get(api, dag.cid)

    # then the good copy is what comes
    assert reply.status == 200
    assert car_blocks(reply.body, dag.root) == {cid.key: data for cid, data in dag.blocks}


# -- from the archive ----------------------------------------------------------------


def test_with_no_node_holding_it_the_dag_comes_from_its_archive(api, services, tenant_id, nodes):
    # given a pinned, archived DAG that no node holds any more
    dag = a_dag(40_000)
    archived(services, dag, pinned(api, services, tenant_id, dag), tenant_id)

    # when it is asked for as a CAR and as a raw block
    car = get(api, dag.cid)
    raw = get(api, dag.cid, accept=RAW)

    # then both come from the archive, verified
    assert car.status == 200 and header(car, "X-Served-From") == "archive"
    assert car_blocks(car.body, dag.root) == {cid.key: data for cid, data in dag.blocks}
    assert raw.status == 200 and raw.body == dag.blocks[0][1]


def test_a_dag_over_the_limit_redirects_to_a_short_lived_url_of_its_archive(api, services, tenant_id, nodes):
    # given a pinned, archived DAG of 200 KB, over the 64 KiB an answer holds
    dag = a_dag(200_000)
    held_by_every_node(nodes, dag)
    archived(services, dag, pinned(api, services, tenant_id, dag), tenant_id)

    # when it is asked for
    reply = get(api, dag.cid)

    # then the answer is a temporary redirect to a presigned URL that reads the CAR
    assert reply.status == 307 and reply.body == b""
    location = header(reply, "Location")
    assert location is not None
    query = parse_qs(urlsplit(location).query)
    lifetime = int(query["X-Amz-Expires"][0]) if "X-Amz-Expires" in query else int(query["Expires"][0]) - time.time()
    assert 290 <= lifetime <= 300
    fetched = requests.get(location, timeout=10)
    assert fetched.status_code == 200
    assert car_blocks(fetched.content, dag.root) == {cid.key: data for cid, data in dag.blocks}
    # and no node was asked: the archive's size was known
    assert not any(fake.calls_to("dag/export") for fake in nodes.values())


def test_a_tampered_archive_is_a_server_error_and_nothing_unverified_is_sent(api, services, tenant_id, nodes):
    # given a pinned DAG no node holds, whose archived copy has a corrupt leaf
    dag = a_dag(40_000)
    archived(services, dag, pinned(api, services, tenant_id, dag), tenant_id, car=tampered(dag, 1))

    # when it is asked for
    reply = get(api, dag.cid)

    # then the answer is a 502 Failure: no CAR bytes at all
    assert_failure(reply, 502, "INTEGRITY_FAILURE")
    assert header(reply, "Content-Type") == "application/json"


def test_an_archive_in_deep_archive_answers_503_until_thawed(api, services, tenant_id, nodes):
    # given a pinned DAG no node holds, whose archive a lifecycle rule moved to Deep Archive
    dag = a_dag(40_000)
    archived(services, dag, pinned(api, services, tenant_id, dag), tenant_id, StorageClass="DEEP_ARCHIVE")

    # when it is asked for
    reply = get(api, dag.cid)

    # then the answer says it is being restored and when to come back
    assert_failure(reply, 503, "ARCHIVE_THAWING")
    assert header(reply, "Retry-After") == str(12 * 3600)


def test_a_large_dag_whose_archive_is_being_made_answers_503(api, services, tenant_id, nodes):
    # given a pinned 200 KB DAG the nodes hold, its archive begun but not done
    dag = a_dag(200_000)
    held_by_every_node(nodes, dag)
    request_id = pinned(api, services, tenant_id, dag)
    DynamoArchiveRepository(services.dynamo).hold(ArchiveHolder(dag.cid, tenant_id, request_id))

    # when it is asked for
    reply = get(api, dag.cid)

    # then it is not available yet, with a time to come back
    assert_failure(reply, 503, "SERVICE_UNAVAILABLE")
    assert header(reply, "Retry-After") == "60"


def test_a_large_dag_with_no_archive_coming_is_422_and_its_root_block_still_reads(api, services, tenant_id, nodes):
    # given a pinned 200 KB DAG the nodes hold and no archive at all (hot-only: the worker says `cold: off`)
    dag = a_dag(200_000)
    held_by_every_node(nodes, dag)
    request_id = pinned(api, services, tenant_id, dag)
    pin = services.store.get(tenant_id, created_ms_of(request_id))
    services.store.update(pin, info={"cold": "off"})

    # when the whole DAG, then its root block, is asked for
    whole = get(api, dag.cid)
    block = get(api, dag.cid, **{"dag-scope": "block"})

    # then the whole is refused as too large, the block comes
    assert_failure(whole, 422, "TOO_LARGE")
    assert block.status == 200


def test_a_large_dag_pinned_before_its_archive_began_answers_503(api, services, tenant_id, nodes):
    # given a pinned 200 KB DAG the nodes hold, whose archive message is not yet taken (no archive, no `cold`)
    dag = a_dag(200_000)
    held_by_every_node(nodes, dag)
    pinned(api, services, tenant_id, dag)

    # when it is asked for, then it is not available yet, with a time to come back (not refused as too large)
    reply = get(api, dag.cid)
    assert_failure(reply, 503, "SERVICE_UNAVAILABLE")
    assert header(reply, "Retry-After") == "60"


def test_with_no_copy_anywhere_the_answer_is_503(api, services, tenant_id, nodes):
    # given a pinned DAG no node holds and that has no archive
    dag = a_dag(10_000)
    pinned(api, services, tenant_id, dag)

    # when it is asked for
    reply = get(api, dag.cid)

    # then the service says to come back later
    assert_failure(reply, 503, "SERVICE_UNAVAILABLE")
    assert header(reply, "Retry-After") == "30"


# -- who may read what ---------------------------------------------------------------


def test_another_tenants_cid_is_not_found_exactly_like_an_unknown_one(api, services, tenant_id, other_tenant, nodes):
    # given a DAG pinned by another tenant, which the nodes hold, and a CID nobody pinned
    dag, unknown = a_dag(10_000, seed=1), a_dag(10_000, seed=2)
    held_by_every_node(nodes, dag)
    pinned(other_tenant.api, services, other_tenant.tenant_id, dag)

    # when the first tenant asks for each
    theirs = get(api, dag.cid)
    nobodys = get(api, unknown.cid)

    # then both are the same 404, and no node was asked
    assert_failure(theirs, 404, "NOT_FOUND")
    assert (theirs.status, theirs.body) == (nobodys.status, nobodys.body)
    assert not any(fake.calls for fake in nodes.values())


def test_a_request_not_pinned_yet_is_not_found(api, services, tenant_id, nodes):
    # given a request still queued
    dag = a_dag(10_000)
    api.pin(dag.cid)

    # when its content is asked for
    # then it is not found
    assert_failure(get(api, dag.cid), 404, "NOT_FOUND")


def test_without_a_token_the_answer_is_401(api, nodes):
    # given no token
    reply = get(api.as_token("nope"), a_dag(1000).cid)
    # then unauthorized
    assert_failure(reply, 401, "UNAUTHORIZED")


# -- what may be asked -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "params", "status", "reason"),
    [
        pytest.param("application/json", {}, 406, "NOT_ACCEPTABLE", id="json"),
        pytest.param("application/json", {"format": "car"}, 406, "NOT_ACCEPTABLE", id="format-behind-json"),
        pytest.param(CAR, {"format": "dag-json"}, 406, "NOT_ACCEPTABLE", id="dag-json"),
        pytest.param(f"{CAR}; dups=y", {}, 406, "NOT_ACCEPTABLE", id="dups-y"),
        pytest.param(CAR, {"car-version": "2"}, 406, "NOT_ACCEPTABLE", id="carv2"),
        pytest.param(None, {"format": "car"}, 406, "NOT_ACCEPTABLE", id="no-accept"),
        pytest.param(CAR, {"format": "zip"}, 400, "INVALID_QUERY", id="unknown-format"),
        pytest.param(CAR, {"dag-scope": "most"}, 400, "INVALID_QUERY", id="bad-scope"),
        pytest.param(CAR, {"entity-bytes": "0:99"}, 400, "INVALID_QUERY", id="entity-bytes"),
    ],
)
def test_what_cannot_be_served_is_refused_before_anything_is_read(
    api, services, tenant_id, nodes, accept, params, status, reason
):
    # given a pinned DAG
    dag = a_dag(10_000)
    pinned(api, services, tenant_id, dag)

    # when it is asked for in a way this service does not serve
    reply = get(api, dag.cid, accept=accept, **params)

    # then the Failure says why, and nothing was read
    assert_failure(reply, status, reason)
    assert not any(fake.calls for fake in nodes.values())


def test_a_car_asked_with_the_variant_served_and_q_values_is_served(api, services, tenant_id, nodes):
    # given a pinned DAG the nodes hold
    dag = a_dag(10_000)
    held_by_every_node(nodes, dag)
    pinned(api, services, tenant_id, dag)

    # when the client prefers a variant not served, then the one served
    accept = f"{CAR};order=dfs;dups=y, {CAR};version=1;order=dfs;dups=n;q=0.5, {RAW};q=0.1"
    reply = get(api, dag.cid, accept=accept)

    # then the served variant comes
    assert (
        reply.status == 200
        and header(
            reply,
            "Content-Type",
        )
        == f"{CAR}; version=1; order=dfs; dups=n"
    )


def test_a_malformed_cid_is_400(api, nodes):
    # when a CID that does not decode is asked for
    # then invalid
    assert_failure(get(api, "not-a-cid"), 400, "INVALID_CID")


def test_head_answers_the_headers_without_reading_the_content(api, services, tenant_id, nodes):
    # given a pinned DAG
    dag = a_dag(10_000)
    pinned(api, services, tenant_id, dag)

    # when HEAD asks for it, and for another
    reply = get(api, dag.cid, method="HEAD")
    other = get(api, a_dag(10, seed=9).cid, method="HEAD")

    # then 200 with the headers and no body, 404 for the other; no node read
    assert reply.status == 200 and reply.body == b""
    assert header(reply, "Content-Type") == f"{CAR}; version=1; order=dfs; dups=n"
    assert other.status == 404
    assert not any(fake.calls for fake in nodes.values())


def test_a_matching_if_none_match_is_304_without_a_read(api, services, tenant_id, nodes):
    # given a pinned DAG
    dag = a_dag(10_000)
    pinned(api, services, tenant_id, dag)

    # when the client revalidates with the ETag it holds
    headers = {"Authorization": f"Bearer {api.token}", "Accept": RAW, "If-None-Match": f'"{dag.cid}.raw"'}
    with Client(_app()) as client:
        response = client.http.get(f"/ipfs/{dag.cid}", headers=headers)

    # then not modified, and nothing was read
    assert response.status_code == 304 and not response.body
    assert not any(fake.calls for fake in nodes.values())


def test_the_identity_probe_cid_answers_empty(api, nodes):
    # when the spec's probe CID (identity, empty) is asked for raw
    reply = get(api, "bafkqaaa", accept=RAW)
    # then an empty body
    assert reply.status == 200 and reply.body == b""


def test_other_methods_are_405(api, nodes):
    # when the path is posted to
    with Client(_app()) as client:
        response = client.http.post("/ipfs/bafkqaaa", headers={"Authorization": f"Bearer {api.token}"})
    # then it is not allowed
    assert response.status_code == 405


def test_an_integrity_failure_counts_in_the_metric_its_alarm_watches(capsys):
    # given a retriever whose every stored copy fails verification, and the stage's alarm
    from chalicelib.api.errors import ApiError
    from chalicelib.api.retrieval import parse_request, respond
    from chalicelib.cold.retrieval import IntegrityFailure
    from infra.render import alarms

    class Corrupt:
        def retrieve(self, retrieval):
            raise IntegrityFailure("the archive of x: its bytes do not hash to its CID")

    alarm = alarms(replace(Settings(), stage="prod"), "api", "api")["RetrievalIntegrityAlarm"]["Properties"]
    request = parse_request("tenant", a_dag(1_000).cid, {}, {"accept": CAR})

    # when a retrieval meets it under Lambda (metrics on)
    with pytest.raises(ApiError) as failure:
        respond(Corrupt(), request, "GET", None, metrics_stage="prod")  # type: ignore[arg-type]

    # then the client gets a 502 and the one metric line is the alarm's
    assert failure.value.status == 502
    (line,) = [json.loads(text) for text in capsys.readouterr().out.splitlines()]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert (directive["Namespace"], [m["Name"] for m in directive["Metrics"]]) == (
        alarm["Namespace"],
        [alarm["MetricName"]],
    )
    assert line["Stage"] == "prod"
