"""SystemDns, the worker's DNS through dnspython, against a DNS server on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from chalicelib.worker.origins import LookupFailed, SystemDns

RECORD = "dnsaddr=/ip4/147.75.80.1/tcp/4001/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN"
ZONE = {
    ("peer.test", "A"): ["8.8.4.4", "1.1.1.1"],
    ("peer.test", "AAAA"): ["2001:4860::8844"],
    # One record in two strings (as a record over 255 bytes must be), and another.
    ("_dnsaddr.peer.test", "TXT"): [f'"{RECORD[:20]}" "{RECORD[20:]}"', '"v=spf1 -all"'],
}
FAILING = {"broken.test"}


class LoopbackDns:
    """Answers ZONE over UDP on 127.0.0.1: NXDOMAIN for unknown names,
    SERVFAIL for FAILING ones, no answer for a known name's other types."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def stop(self) -> None:
        # A closed socket does not wake a blocked recvfrom: a datagram does.
        self.stopping.set()
        self.socket.sendto(b"", ("127.0.0.1", self.port))
        self.thread.join()
        self.socket.close()

    def _serve(self) -> None:
        while True:
            data, client = self.socket.recvfrom(4096)
            if self.stopping.is_set():
                return
            self.socket.sendto(self._answer(dns.message.from_wire(data)).to_wire(), client)

    def _answer(self, query: dns.message.Message) -> dns.message.Message:
        response = dns.message.make_response(query)
        question = query.question[0]
        name = question.name.to_text(omit_final_dot=True)
        rdtype = dns.rdatatype.to_text(question.rdtype)
        if name in FAILING:
            response.set_rcode(dns.rcode.SERVFAIL)
        elif (name, rdtype) in ZONE:
            response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", rdtype, ZONE[name, rdtype]))
        elif not any(known == name for known, _ in ZONE):
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response


@pytest.fixture
def server() -> Iterator[LoopbackDns]:
    running = LoopbackDns()
    running.thread.start()
    yield running
    running.stop()


def test_addresses_of_each_family_come_from_the_named_servers(server: LoopbackDns) -> None:
    # given a resolver asking only the loopback server
    system = SystemDns(nameservers=["127.0.0.1"], port=server.port)

    # when asked for each family's addresses
    v4, v6 = system.addresses("peer.test", 4, 2.0), system.addresses("peer.test", 6, 2.0)

    # then it has the zone's records, as text
    assert (sorted(v4), v6) == (["1.1.1.1", "8.8.4.4"], ["2001:4860::8844"])


def test_a_txt_record_in_several_strings_is_one_value(server: LoopbackDns) -> None:
    system = SystemDns(nameservers=["127.0.0.1"], port=server.port)

    assert sorted(system.txt("_dnsaddr.peer.test", 2.0)) == sorted([RECORD, "v=spf1 -all"])


@pytest.mark.parametrize(("name", "version"), [("gone.test", 4), ("_dnsaddr.peer.test", 6)])
def test_no_such_name_and_no_such_record_are_no_addresses(server: LoopbackDns, name: str, version: int) -> None:
    system = SystemDns(nameservers=["127.0.0.1"], port=server.port)

    assert system.addresses(name, version, 2.0) == []


@pytest.mark.parametrize("name", ["broken.test", "a" * 64 + ".test"])
def test_a_failing_server_or_a_malformed_name_is_a_failed_lookup(server: LoopbackDns, name: str) -> None:
    system = SystemDns(nameservers=["127.0.0.1"], port=server.port)

    with pytest.raises(LookupFailed):
        system.addresses(name, 4, 2.0)
