"""Which URLs and addresses Herald calls for a tenant: public ones, and those the admin names."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herald.config import Settings
from herald.domain.urls import PUBLIC_ONLY, UrlRefused, kind_of, literal_address, policy_of

LOOPBACK = policy_of(["127.0.0.1", "::1", "localhost"])


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local address (169.254.169.254)"),
        ("http://[fe80::1]/", "link-local"),
        ("http://[fe80::1%25eth0]/", "link-local"),
        ("http://10.0.0.5/", "private address (10.0.0.5)"),
        ("http://172.16.0.1/", "private"),
        ("http://172.31.255.255/", "private"),
        ("http://192.168.1.1:8080/", "private"),
        ("http://100.64.0.1/", "private"),  # CGNAT
        ("http://100.127.255.254/", "private"),
        ("http://[fc00::1]/", "private"),  # ULA
        ("http://[fd12:3456::1]/", "private"),
        ("http://[fec0::1]/", "site-local"),
        ("http://127.0.0.1/", "loopback address (127.0.0.1)"),
        ("http://127.255.0.9/", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://localhost/", "loopback address (localhost)"),
        ("http://LocalHost./", "loopback"),
        ("http://api.localhost/", "loopback"),
        ("http://0x7f.1/", "loopback address (0x7f.1, which is 127.0.0.1)"),
        ("http://2130706433/", "which is 127.0.0.1"),
        ("http://017700000001/", "which is 127.0.0.1"),
        ("http://0x7f000001/", "which is 127.0.0.1"),
        ("http://127.1/", "which is 127.0.0.1"),
        ("http://0177.0.0.1/", "which is 127.0.0.1"),
        ("http://10.1/", "which is 10.0.0.1"),
        ("http://0xa9.0xfe.0xa9.0xfe/", "which is 169.254.169.254"),
        ("http://[::ffff:10.0.0.1]/", "private"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://[::ffff:a9fe:a9fe]/", "link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/", "link-local"),  # NAT64
        ("http://[2002:a00:1::]/", "private"),  # 6to4 of 10.0.0.1
        ("http://[2001::1]/", "private"),  # Teredo
        ("http://[::a00:1]/", "reserved"),  # IPv4-compatible, deprecated
        ("http://0.0.0.0/", "unspecified"),
        ("http://0/", "unspecified"),
        ("http://[::]/", "unspecified"),
        ("http://0.1.2.3/", "private"),
        ("http://224.0.0.1/", "multicast"),
        ("http://239.255.255.250/", "multicast"),
        ("http://[ff02::1]/", "multicast"),
        ("http://255.255.255.255/", "private"),
        ("http://240.0.0.1/", "private"),
        ("http://192.0.2.1/", "private"),  # documentation
        ("http://198.51.100.7/", "private"),
        ("http://203.0.113.9/", "private"),
        ("http://[2001:db8::1]/", "private"),
        ("http://198.18.0.1/", "private"),  # benchmarking
        ("http://192.0.0.1/", "private"),
    ],
)
def test_private_loopback_and_odd_spellings_are_refused(url: str, says: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        PUBLIC_ONLY.check_url(url)
    assert says in caught.value.reason
    assert caught.value.private
    assert "HERALD_ALLOWED_PRIVATE_HOSTS" in caught.value.sentence("callbackUrl")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://user:pass@example.com/", "user name or password"),
        ("http://user@example.com/", "user name or password"),
        ("http://example.com\\@10.0.0.1/", "backslashes"),
        ("http://exa mple.com/", "spaces"),
        ("http://exa%6dple.com/", "not a valid host name"),
        ("http://1.2.3.4.5/", "not a valid IPv4 address"),
        ("http://256.1.1.1/", "not a valid IPv4 address"),
        ("http://0x100000000/", "not a valid IPv4 address"),
        ("http://08.0.0.1/", "not a valid IPv4 address"),  # 8 is no octal digit
        ("http://[1:2]/", "does not appear to be an IPv4 or IPv6 address"),
        ("ftp://example.com/", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("gopher://example.com:6379/", "http:// or https://"),
        ("//example.com/", "http:// or https://"),
        ("http://example.com:port/", "absolute"),
        ("http:///path", "absolute"),
    ],
)
def test_urls_that_disguise_their_target_are_refused(url: str, says: str) -> None:
    with pytest.raises(UrlRefused) as caught:
        LOOPBACK.check_url(url)
    assert says in caught.value.reason
    assert not caught.value.private  # no setting lets these through


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "http://8.8.8.8/",
        "https://[2001:4860:4860::8888]/",
        "http://[::ffff:8.8.8.8]/",
        "http://[64:ff9b::808:808]/",  # NAT64 of a public address
        "https://hooks.example.co.uk:8443/a?b=c#d",
        "https://пример.рф/",
        "https://internal-name/",  # a DNS name: checked again when connecting
    ],
)
def test_public_addresses_and_dns_names_pass(url: str) -> None:
    PUBLIC_ONLY.check_url(url)


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0X7F.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0177.0.0.01", "127.0.0.1"),
        ("10.0.258", "10.0.1.2"),
        ("192.168.65535", "192.168.255.255"),
        ("0", "0.0.0.0"),
        ("127.0.0.1.", "127.0.0.1"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ("[::1]", "::1"),
    ],
)
def test_ipv4_spellings_read_as_the_resolver_reads_them(text: str, address: str) -> None:
    assert literal_address(text) == ipaddress.ip_address(address)


@pytest.mark.parametrize("text", ["example.com", "localhost", "a.b.c", "1.2.3.com", "0x7f.com"])
def test_dns_names_are_not_literals(text: str) -> None:
    assert literal_address(text) is None


@given(st.integers(0, 2**32 - 1), st.integers(1, 4), st.sampled_from(["d", "o", "x"]))
def test_every_inet_aton_spelling_agrees_with_the_os(number: int, parts: int, base: str) -> None:
    octets = number.to_bytes(4, "big")
    values = [*octets[: parts - 1], int.from_bytes(octets[parts - 1 :], "big")]
    spell = {"d": str, "o": lambda v: f"0{v:o}", "x": lambda v: f"0x{v:x}"}[base]
    text = ".".join(spell(v) for v in values)
    expected = ipaddress.IPv4Address(socket.inet_aton(text))
    assert literal_address(text) == expected == ipaddress.IPv4Address(number)


def test_is_global_edge_cases_are_not_public() -> None:
    # ipaddress calls these global; Herald must not.
    for text in ("224.0.0.1", "ff0e::1", "fec0::1", "::ffff:127.0.0.1", "64:ff9b::7f00:1"):
        assert kind_of(ipaddress.ip_address(text)) is not None, text


def test_the_allowed_list_lets_only_the_named_hosts_through() -> None:
    LOOPBACK.check_url("http://127.0.0.1:8000/hook")
    LOOPBACK.check_url("http://[::1]:8000/hook")
    LOOPBACK.check_url("http://localhost:8000/hook")
    LOOPBACK.check_url("http://LOCALHOST./hook")
    LOOPBACK.check_url("http://[::ffff:127.0.0.1]/")  # the same address, written as IPv6
    LOOPBACK.check_url("http://0x7f.0.0.1/")  # the same address, spelt oddly
    for refused in (
        "http://127.0.0.2/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://api.localhost/",
        "http://[fd00::1]/",
    ):
        with pytest.raises(UrlRefused):
            LOOPBACK.check_url(refused)


def test_cidrs_and_host_names_in_the_allowed_list() -> None:
    policy = policy_of(["10.20.0.0/16", "fd00:1::/32", "Relay.Corp.Example"])
    policy.check_url("http://10.20.3.4/")
    policy.check_url("http://[fd00:1::9]/")
    with pytest.raises(UrlRefused):
        policy.check_url("http://10.21.0.1/")
    with pytest.raises(UrlRefused):
        policy.check_url("http://[fd00:2::9]/")
    # A named host may resolve to a private address: naming it is the admin's say-so.
    policy.check_address("relay.corp.example", ipaddress.ip_address("10.99.0.1"))
    with pytest.raises(UrlRefused):
        policy.check_address("other.corp.example", ipaddress.ip_address("10.99.0.1"))
    policy.check_address("other.corp.example", ipaddress.ip_address("10.20.0.1"))
    policy.check_address("other.corp.example", ipaddress.ip_address("93.184.216.34"))


@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/33", "bad host", "1.2.3.4.5", "a%b"])
def test_a_bad_allowed_entry_stops_the_start_with_one_clear_line(value: str) -> None:
    with pytest.raises(ValueError, match="is not a host name, an IP address or a CIDR"):
        Settings(allowed_private_hosts=value)  # type: ignore[arg-type]


def test_the_setting_is_a_comma_separated_list() -> None:
    settings = Settings(allowed_private_hosts=" 127.0.0.1, ::1 ,localhost,")  # type: ignore[arg-type]
    assert settings.allowed_private_hosts == ("127.0.0.1", "::1", "localhost")
    settings.url_policy.check_url("http://localhost:1/")
    assert Settings().url_policy == PUBLIC_ONLY
