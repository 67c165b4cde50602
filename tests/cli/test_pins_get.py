"""`python -m cli.pins get` against HTTP servers of the test's own, on
127.0.0.1: one plays the service's `GET /ipfs/{cid}` (a CAR, a redirect,
Failure answers), a second the archive's presigned URL. The CLI runs
in-process through click's CliRunner."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chalicelib.cold.car import Block, write_car
from chalicelib.cold.cids import Cid
from chalicelib.pins.sizes import format_bytes
from cli import pins
from cli.pins import GetProgress, StatusLine, cli
from tests.cold.dags import Dag, balanced_file, cid_v1, directory, leaf, symlink

TOKEN = "tenant-token"
CLEAN_ENV: dict[str, str | None] = {pins.URL_VAR: None, pins.TOKEN_VAR: None, pins.KUBO_VAR: None}
CAR_TYPE = "application/vnd.ipld.car; version=1; order=dfs; dups=n"

# What a handler answers: status, headers, body.
Answer = tuple[int, dict[str, str], bytes]


@dataclass
class Server:
    """A loopback HTTP server answering GETs by path, recording each request's headers."""

    answers: dict[str, Callable[[], Answer]] = field(default_factory=dict)
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    url: str = ""

    def handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                server.seen.append((self.path, dict(self.headers.items())))
                answer = server.answers.get(self.path.split("?", 1)[0])
                status, headers, body = answer() if answer else (404, {}, b"no route")
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        return Handler


@pytest.fixture
def serve() -> Iterator[Callable[[], Server]]:
    running: list[ThreadingHTTPServer] = []

    def start() -> Server:
        server = Server()
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), server.handler())
        server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        running.append(httpd)
        return server

    yield start
    for httpd in running:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def service(serve: Callable[[], Server]) -> Server:
    return serve()


def car_of(dag: Dag, blocks: list[tuple[Cid, bytes]] | None = None) -> bytes:
    return b"".join(write_car([dag.cid], dag.blocks if blocks is None else blocks))


def serves_car(car: bytes) -> Callable[[], Answer]:
    return lambda: (200, {"Content-Type": CAR_TYPE}, car)


def failure(status: int, reason: str, details: str, **headers: str) -> Callable[[], Answer]:
    body = json.dumps({"error": {"reason": reason, "details": details}}).encode()
    return lambda: (status, {"Content-Type": "application/json", **headers}, body)


def run_get(service: Server, *args: str) -> Result:
    return CliRunner().invoke(
        cli, ["--url", service.url, "--token", TOKEN, "get", *args], env=CLEAN_ENV, catch_exceptions=False
    )


def one_line_error(result: Result, exit_code: int, *fragments: str) -> None:
    assert result.exit_code == exit_code, f"{result.stdout}\n{result.stderr}"
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error_lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in error_lines[0], error_lines[0]


# -- files ------------------------------------------------------------------------------------


def test_given_a_pinned_file_when_got_then_its_bytes_are_written_after_an_authorised_car_request(
    service: Server, tmp_path: Path
) -> None:
    # given the service serving a chunked file's CAR
    data = os.urandom(20_000)
    dag = balanced_file(data, 1024, 4)
    service.answers[f"/ipfs/{dag.cid}"] = serves_car(car_of(dag))

    # when got to a file
    result = run_get(service, str(dag.cid), "-o", str(tmp_path / "file.bin"))

    # then the file holds the bytes, and the request carried the token and asked for a CAR
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "file.bin").read_bytes() == data
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.bin"]
    [(path, headers)] = service.seen
    assert path == f"/ipfs/{dag.cid}"
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["Accept"] == "application/vnd.ipld.car"
    # and stderr says what was written
    assert f"wrote {tmp_path / 'file.bin'}: a file of 19.5 KiB, {len(dag.blocks)} blocks verified" in result.stderr


def test_given_no_output_option_when_got_then_the_file_is_named_after_the_cid_in_the_current_directory(
    service: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a single raw block, and a working directory
    dag = leaf(b"one block")
    service.answers[f"/ipfs/{dag.cid}"] = serves_car(car_of(dag))
    monkeypatch.chdir(tmp_path)

    # when got without -o
    result = run_get(service, str(dag.cid))

    # then ./CID holds its bytes
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / str(dag.cid)).read_bytes() == b"one block"


def test_given_output_dash_when_got_then_the_verified_bytes_go_to_stdout(service: Server, tmp_path: Path) -> None:
    # given a file's CAR
    data = os.urandom(5000)
    dag = balanced_file(data, 1024, 2)
    service.answers[f"/ipfs/{dag.cid}"] = serves_car(car_of(dag))

    # when got to stdout
    result = run_get(service, str(dag.cid), "-o", "-")

    # then stdout is exactly the file
    assert result.exit_code == 0, result.stderr
    assert result.stdout_bytes == data


def test_given_a_redirect_to_the_archive_when_got_then_followed_without_the_token(
    serve: Callable[[], Server], tmp_path: Path
) -> None:
    # given the service redirecting to a presigned URL of a second server (another port: another origin)
    service, archive = serve(), serve()
    data = os.urandom(9000)
    dag = balanced_file(data, 1024, 3)
    archive.answers["/archives/car"] = lambda: (
        200,
        {"Content-Type": "application/vnd.ipld.car; version=1"},
        car_of(dag),
    )
    location = f"{archive.url}/archives/car?X-Amz-Signature=abc"
    service.answers[f"/ipfs/{dag.cid}"] = lambda: (307, {"Location": location}, b"")

    # when got
    result = run_get(service, str(dag.cid), "-o", str(tmp_path / "f"))

    # then the archive served it, asked once, without the tenant's token
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "f").read_bytes() == data
    [(path, headers)] = archive.seen
    assert path == "/archives/car?X-Amz-Signature=abc"
    assert "Authorization" not in headers


# -- directories ---------------------------------------------------------------------------------


def test_given_a_directory_when_got_with_output_dir_then_the_tree_is_written(service: Server, tmp_path: Path) -> None:
    # given a directory with a file, a subdirectory and a symlink
    tree = directory(
        [("a.txt", leaf(b"a")), ("link", symlink("a.txt")), ("sub", directory([("b.bin", leaf(b"b" * 3000))]))]
    )
    service.answers[f"/ipfs/{tree.cid}"] = serves_car(car_of(tree))

    # when got to a directory that does not exist yet
    result = run_get(service, str(tree.cid), "-o", str(tmp_path / "tree"))

    # then the tree is there
    assert result.exit_code == 0, result.stderr
    root = tmp_path / "tree"
    assert (root / "a.txt").read_bytes() == b"a"
    assert (root / "sub" / "b.bin").read_bytes() == b"b" * 3000
    assert (root / "link").is_symlink() and os.readlink(root / "link") == "a.txt"
    assert "a directory of 2 files" in result.stderr


def test_given_a_directory_when_got_to_stdout_then_refused_and_nothing_printed(service: Server) -> None:
    tree = directory([("a.txt", leaf(b"a"))])
    service.answers[f"/ipfs/{tree.cid}"] = serves_car(car_of(tree))

    result = run_get(service, str(tree.cid), "-o", "-")

    one_line_error(result, 1, "directory cannot go to stdout")
    assert result.stdout_bytes == b""


def test_given_an_entry_named_dot_dot_when_got_then_refused_with_exit_3_and_nothing_written(
    service: Server, tmp_path: Path
) -> None:
    tree = directory([("..", leaf(b"escape"))])
    service.answers[f"/ipfs/{tree.cid}"] = serves_car(car_of(tree))

    result = run_get(service, str(tree.cid), "-o", str(tmp_path / "tree"))

    one_line_error(result, 3, "'..'", "nothing was written")
    assert list(tmp_path.iterdir()) == []


# -- failures -------------------------------------------------------------------------------------


def test_given_a_tampered_block_when_got_then_exit_3_and_no_output_file(service: Server, tmp_path: Path) -> None:
    # given a CAR whose last block has one byte flipped
    dag = balanced_file(os.urandom(20_000), 1024, 4)
    cid, block = dag.blocks[-1]
    service.answers[f"/ipfs/{dag.cid}"] = serves_car(car_of(dag, [*dag.blocks[:-1], (cid, block[:-1] + b"\x00")]))

    # when got
    result = run_get(service, str(dag.cid), "-o", str(tmp_path / "out"))

    # then integrity failure, and nothing in the directory: no file, no partial file, no spill
    one_line_error(result, 3, str(cid), "do not hash to its CID", "nothing was written")
    assert list(tmp_path.iterdir()) == []


def test_given_a_car_missing_a_block_when_got_then_exit_3_naming_it(service: Server, tmp_path: Path) -> None:
    dag = balanced_file(os.urandom(8000), 1024, 8)
    service.answers[f"/ipfs/{dag.cid}"] = serves_car(car_of(dag, dag.blocks[:-1]))

    result = run_get(service, str(dag.cid), "-o", str(tmp_path / "out"))

    one_line_error(result, 3, f"without block {dag.blocks[-1][0]}")
    assert list(tmp_path.iterdir()) == []


def test_given_a_download_cut_short_when_got_then_exit_1_and_nothing_written(service: Server, tmp_path: Path) -> None:
    # given a server that announces the whole CAR's length and sends half of it
    dag = balanced_file(os.urandom(20_000), 1024, 4)
    car = car_of(dag)
    service.answers[f"/ipfs/{dag.cid}"] = lambda: (
        200,
        {"Content-Type": CAR_TYPE, "Content-Length": str(len(car))},
        car[: len(car) // 2],
    )

    # when got
    result = run_get(service, str(dag.cid), "-o", str(tmp_path / "out"))

    # then the cut is said, nothing is left
    one_line_error(result, 1, "was cut", "nothing was written")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("status", "reason", "details", "headers", "exit_code", "fragments"),
    [
        (404, "NOT_FOUND", "no pinned content with this CID", {}, 1, ["NOT_FOUND: no pinned content"]),
        (406, "NOT_ACCEPTABLE", "only CAR and raw blocks", {}, 1, ["NOT_ACCEPTABLE: only CAR"]),
        (503, "RESTORE_IN_PROGRESS", "the archive is thawing", {"Retry-After": "3600"}, 4, ["retry after 3600 s"]),
    ],
    ids=["404", "406", "503"],
)
def test_given_a_failure_answer_when_got_then_one_line_with_its_exit_status_and_nothing_written(
    service: Server,
    tmp_path: Path,
    status: int,
    reason: str,
    details: str,
    headers: dict[str, str],
    exit_code: int,
    fragments: list[str],
) -> None:
    cid = leaf(b"x").cid
    service.answers[f"/ipfs/{cid}"] = failure(status, reason, details, **headers)

    result = run_get(service, str(cid), "-o", str(tmp_path / "out"))

    one_line_error(result, exit_code, *fragments)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["an existing directory", "a missing parent"])
def test_given_an_output_path_it_cannot_use_when_got_then_refused_before_any_request(
    service: Server, tmp_path: Path, where: str
) -> None:
    # given -o naming an existing directory, or a file in a directory that does not exist
    target = tmp_path if where == "an existing directory" else tmp_path / "missing" / "out"

    # when got, then refused without asking the service
    result = run_get(service, str(leaf(b"x").cid), "-o", str(target))

    one_line_error(result, 1, str(target if where == "an existing directory" else target.parent))
    assert service.seen == []


def test_given_a_dag_cbor_cid_when_got_without_car_then_refused_before_any_request(service: Server) -> None:
    cid = cid_v1(0x71, b"\xa0")

    result = run_get(service, str(cid))

    one_line_error(result, 1, "not UnixFS", "--car")
    assert service.seen == []


def test_given_a_dag_cbor_dag_when_got_with_car_then_the_verified_car_is_written(
    service: Server, tmp_path: Path
) -> None:
    # given a dag-cbor root linking to a raw block, served as a CAR
    import dag_cbor
    from multiformats import CID

    child = leaf(b"child")
    encoded = dag_cbor.encode({"child": CID.decode(child.cid.binary)})
    root = cid_v1(0x71, encoded)
    car = b"".join(write_car([root], [(root, encoded), *child.blocks]))
    service.answers[f"/ipfs/{root}"] = serves_car(car)

    # when got with --car (default name: CID.car)
    result = run_get(service, str(root), "--car", "-o", str(tmp_path / "dag.car"))

    # then the file is the CAR
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "dag.car").read_bytes() == car
    assert "a CAR of" in result.stderr and "2 blocks verified" in result.stderr


def test_given_json_when_got_then_a_summary_on_stdout(service: Server, tmp_path: Path) -> None:
    dag = leaf(b"json me")
    service.answers[f"/ipfs/{dag.cid}"] = serves_car(car_of(dag))

    result = run_get(service, str(dag.cid), "-o", str(tmp_path / "f"), "--json")

    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == {
        "cid": str(dag.cid),
        "path": str(tmp_path / "f"),
        "kind": "file",
        "bytes": 7,
        "blocks": 1,
        "files": 1,
        "directories": 0,
    }


# -- progress ---------------------------------------------------------------------------------------


def test_given_quiet_when_got_then_stderr_is_empty(service: Server, tmp_path: Path) -> None:
    # given a CAR, and the same get with and without --quiet
    dag = balanced_file(os.urandom(5000), 1024, 2)
    car = car_of(dag)
    service.answers[f"/ipfs/{dag.cid}"] = serves_car(car)

    loud = run_get(service, str(dag.cid), "-o", str(tmp_path / "loud"))
    quiet = run_get(service, str(dag.cid), "-o", str(tmp_path / "quiet"), "--quiet")

    # then progress shows without it (not a terminal: plain lines), nothing with it
    assert loud.exit_code == quiet.exit_code == 0
    size = format_bytes(len(car))
    assert f"getting {dag.cid}: {size} of {size}, {len(dag.blocks)} blocks verified\n" in loud.stderr
    assert quiet.stderr == ""
    assert (tmp_path / "quiet").read_bytes() == (tmp_path / "loud").read_bytes()


def test_given_a_terminal_when_blocks_arrive_then_the_line_is_redrawn_at_most_every_redraw_interval() -> None:
    # given progress on a terminal and a clock the test moves
    import io

    now = [0.0]
    stream = io.StringIO()
    progress = GetProgress(StatusLine(stream, tty=True), "bafy", 3000, clock=lambda: now[0])

    # when three chunks come within one interval, then a block after it
    for _ in range(3):
        progress.chunk(500)
    now[0] += pins.REDRAW_S
    progress.block(Block(leaf(b"x").cid, 0, b"x"))
    progress.finish()

    # then the first, the one after the interval and the final one were drawn, and the line cleared
    draws = stream.getvalue().split("\r\x1b[K")[1:]
    assert draws == [
        "getting bafy: 500 bytes of 2.9 KiB, 0 blocks verified",
        "getting bafy: 1.5 KiB of 2.9 KiB, 1 block verified",
        "getting bafy: 1.5 KiB of 2.9 KiB, 1 block verified",
        "",
    ]
