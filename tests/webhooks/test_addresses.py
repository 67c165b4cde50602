"""Endpoint URLs by the production rules for origins: https, global addresses
only, checked on the addresses that will be connected to."""

from __future__ import annotations

import pytest

from chalicelib.webhooks.addresses import AddressCheck, EndpointRefused, Target
from tests.support.fake_dns import FakeDns

DNS = FakeDns(
    a={
        "hooks.example": ["93.184.215.14"],
        "inside.example": ["10.0.0.5"],
        "split.example": ["93.184.215.15", "192.168.1.1"],
        "metadata.example": ["169.254.169.254"],
    },
    aaaa={"v6.example": ["2001:db8::1", "2606:4700::1"]},
    failing=["broken.example"],
)


def test_an_https_url_on_a_global_address_is_taken_with_the_address_checked():
    # Given production's rules
    check = AddressCheck(DNS)
    # When a URL naming a host with a global address is checked
    target = check("https://hooks.example:8443/in?x=1")
    # Then its target is that address, the host kept for Host and TLS
    assert target == Target("https", "hooks.example", 8443, "/in?x=1", "93.184.215.14")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://hooks.example/", "must be https"),
        ("ftp://hooks.example/", "must be https"),
        ("https://10.1.2.3/", "10.0.0.0/8"),
        ("https://127.0.0.1/", "127.0.0.0/8"),
        ("https://[::1]/", "::1"),
        ("https://inside.example/", "inside.example resolves to 10.0.0.5"),
        ("https://split.example/", "resolves to 192.168.1.1"),
        ("https://metadata.example/", "169.254"),
        ("https://v6.example/", "2001:db8::1"),
        ("https://nowhere.example/", "resolves to no address"),
        ("https://broken.example/", "DNS lookup of broken.example failed"),
        ("https://user:pw@hooks.example/", "credentials"),
        ("https://hooks.example/#frag", "fragment"),
        ("https:///path", "no host"),
        ("https://hooks.example:99999/", "not a URL"),
    ],
)
def test_production_refuses_every_url_not_https_to_global_addresses(url, why):
    # Given production's rules
    check = AddressCheck(DNS)
    # When a URL outside them is checked
    with pytest.raises(EndpointRefused) as refused:
        check(url)
    # Then it is refused, saying why
    assert why in str(refused.value)


def test_the_local_stack_takes_http_on_loopback_only():
    # Given the local stack's rules
    check = AddressCheck(DNS, allow_loopback=True)
    # When loopback and other URLs are checked
    # Then http is taken on loopback, and nothing else private
    assert check("http://127.0.0.1:8787/").address == "127.0.0.1"
    assert check("http://[::1]:8787/").address == "::1"
    with pytest.raises(EndpointRefused, match="must be https"):
        check("http://hooks.example/")
    with pytest.raises(EndpointRefused, match="10.0.0.0/8"):
        check("http://10.0.0.1/")
