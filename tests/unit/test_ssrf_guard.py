"""The callback address guard: what it refuses, what it lets through, what it returns."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from amlproxy.errors import ConfigurationError
from amlproxy.sinks._ssrf import forbidden_reason, ip_literal, resolve_target, system_resolver


def resolver_of(*addresses: str) -> tuple[list[tuple[str, int]], object]:
    calls: list[tuple[str, int]] = []

    def resolve(host: str, port: int) -> Sequence[str]:
        calls.append((host, port))
        return list(addresses)

    return calls, resolve


PUBLIC = "93.184.215.14"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/hook",  # not https
        "ftp://example.com/hook",
        "//example.com/hook",
        "https:///hook",  # no host
        "https://user:pw@example.com/hook",  # credentials
        "https://token@example.com/hook",  # a user name alone is a credential too
        "https://:pw@example.com/hook",
        "https://token@8.8.8.8/hook",
        "https://127.0.0.1/hook",
        "https://127.0.0.1:8443/hook",
        "https://localhost/hook",
        "https://LOCALHOST./hook",
        "https://api.localhost/hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://[::ffff:7f00:1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        "https://[::]/hook",
        "https://[fe80::1%25eth0]/hook",
        "https://[fd00:ec2::254]/hook",  # the IPv6 instance metadata address
        "https://[ff02::1]/hook",
        "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 of 169.254.169.254
        "https://[2002:a00:1::]/hook",  # 6to4 of 10.0.0.1
        "https://2130706433/hook",  # decimal 127.0.0.1
        "https://0177.0.0.1/hook",  # octal
        "https://0x7f.0.0.1/hook",  # hexadecimal
        "https://0x7f000001/hook",
        "https://127.1/hook",  # short form
        "https://127.0.0.1./hook",  # trailing dot
        "https://10.0.0.1/hook",
        "https://10.255.255.255/hook",
        "https://172.16.0.1/hook",
        "https://172.31.255.254/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://169.254.170.2/v2/credentials",  # the ECS/Lambda container credentials
        "https://100.64.0.1/hook",
        "https://100.127.255.254/hook",
        "https://0.0.0.0/hook",
        "https://0/hook",
        "https://224.0.0.251/hook",
        "https://240.0.0.1/hook",
        "https://255.255.255.255/hook",
        "https://192.0.2.1/hook",  # documentation range: not routable
        "https://192.0.0.192/latest/meta-data/",  # IETF protocol assignments: a metadata address
        "https://192.0.0.9/hook",  # global per Python 3.13, still in 192.0.0.0/24
        "https://192.0.0.255/hook",
        "https://[::ffff:192.0.0.192]/hook",
        "https://198.18.0.1/hook",  # benchmarking range
        "https://09.1.2.3/hook",  # neither decimal nor octal: invalid, not a name
        "https://256.1.1.1/hook",
        "https://[zz::1]/hook",
    ],
)
def test_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        resolve_target(url, resolver=lambda host, port: [PUBLIC])


@pytest.mark.parametrize(
    "addresses",
    [
        ("10.0.0.5",),
        ("127.0.0.1",),
        ("169.254.169.254",),
        ("::1",),
        ("::ffff:10.1.2.3",),
        ("fe80::1%eth0",),
        (PUBLIC, "192.168.0.7"),  # one bad address among good ones is enough
        ("2606:4700::1111", "fd00::1"),
    ],
)
def test_names_resolving_to_forbidden_addresses_are_refused(addresses: tuple[str, ...]) -> None:
    calls, resolve = resolver_of(*addresses)
    with pytest.raises(ConfigurationError, match="is refused"):
        resolve_target("https://hooks.example.com/in", resolver=resolve)  # type: ignore[arg-type]
    assert calls == [("hooks.example.com", 443)]


def test_names_resolving_to_nothing_or_junk_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="no address"):
        resolve_target("https://hooks.example.com/", resolver=lambda h, p: [])
    with pytest.raises(ConfigurationError, match="non-address"):
        resolve_target("https://hooks.example.com/", resolver=lambda h, p: ["hooks.internal"])


def test_public_name_returns_every_checked_address_to_connect_to() -> None:
    calls, resolve = resolver_of(PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    target = resolve_target(
        "https://Hooks.Example.com:8443/in/x?token=1",
        resolver=resolve,  # type: ignore[arg-type]
        ports=(443, 8443),
    )
    assert calls == [("hooks.example.com", 8443)]
    assert target.host == "hooks.example.com" and target.port == 8443
    assert target.path == "/in/x?token=1"
    assert target.addresses == (PUBLIC, "2606:2800:21f:cb07:6820:80da:af6b:8b2c")


def test_public_literals_need_no_resolution() -> None:
    def no_dns(host: str, port: int) -> Sequence[str]:
        raise AssertionError("an IP literal must not be resolved")

    target = resolve_target("https://8.8.8.8", resolver=no_dns)
    assert (target.host, target.port, target.path, target.addresses) == (
        "8.8.8.8",
        443,
        "/",
        ("8.8.8.8",),
    )
    assert resolve_target("https://[2606:4700::1111]/h", resolver=no_dns).addresses == (
        "2606:4700::1111",
    )
    assert resolve_target("https://[64:ff9b::808:808]/", resolver=no_dns).addresses == (
        "64:ff9b::808:808",
    )


def test_allow_private_lifts_address_checks_but_not_https_credentials_or_ports() -> None:
    assert resolve_target("https://127.0.0.1:9443/h", allow_private=True, ports=None).addresses \
        == ("127.0.0.1",)
    with pytest.raises(ConfigurationError, match="port 9443 is not allowed"):
        resolve_target("https://127.0.0.1:9443/h", allow_private=True)
    with pytest.raises(ConfigurationError, match="credentials"):
        resolve_target("https://token@127.0.0.1/h", allow_private=True)
    target = resolve_target(
        "https://localhost/h", allow_private=True, resolver=lambda h, p: ["::1", "127.0.0.1"]
    )
    assert target.addresses == ("::1", "127.0.0.1")
    with pytest.raises(ConfigurationError, match="https"):
        resolve_target("http://127.0.0.1/h", allow_private=True)


def test_localhost_names_are_refused_without_resolution() -> None:
    def no_dns(host: str, port: int) -> Sequence[str]:
        raise AssertionError("must be refused by name")

    for url in ("https://localhost/", "https://localhost./", "https://x.y.localhost/"):
        with pytest.raises(ConfigurationError, match="loopback name"):
            resolve_target(url, resolver=no_dns)


def test_system_resolver_is_the_default() -> None:
    assert "127.0.0.1" in system_resolver("localhost", 443)  # /etc/hosts: no network
    target = resolve_target("https://localhost:8443/", allow_private=True, ports=None)
    assert "127.0.0.1" in target.addresses


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("0", "0.0.0.0"),
        ("8.8.8.8", "8.8.8.8"),
        ("example.com", None),
        ("1.2.3.4.5", None),
        ("a.b.c.d", None),
        ("deadbeef", None),
        ("0xdeadbeef", "222.173.190.239"),
    ],
)
def test_ip_literal_spellings(host: str, address: str | None) -> None:
    parsed = ip_literal(host)
    assert (str(parsed) if parsed is not None else None) == address


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("100.63.255.255", True),
        ("100.128.0.0", True),
        ("172.15.255.255", True),
        ("172.32.0.0", True),
        ("2606:4700::1111", True),
        ("100.64.0.0", False),
        ("172.16.0.0", False),
        ("::ffff:8.8.8.8", True),
        ("::ffff:192.168.0.1", False),
        ("fec0::1", False),
        ("::127.0.0.1", False),
        ("2001:db8::1", False),
    ],
)
def test_forbidden_reason(address: str, allowed: bool) -> None:
    assert (forbidden_reason(ipaddress.ip_address(address)) is None) is allowed


@pytest.mark.parametrize("last", [0, 1, 9, 10, 170, 171, 192, 255])
def test_the_whole_ietf_protocol_block_is_refused(last: int) -> None:
    """192.0.0.0/24, whatever the Python version calls global in it (192.0.0.9 and .10 are,
    in 3.13; all but /29 and .170/31 are, in 3.11)."""
    assert forbidden_reason(ipaddress.ip_address(f"192.0.0.{last}")) is not None


@pytest.mark.parametrize(
    ("url", "ports", "allowed"),
    [
        ("https://hooks.example.com/in", (443,), True),
        ("https://hooks.example.com:443/in", (443,), True),
        ("https://hooks.example.com:8443/in", (443,), False),
        ("https://hooks.example.com:8443/in", (443, 8443), True),
        ("https://hooks.example.com/in", (8443,), False),  # 443 itself may be left out
        ("https://hooks.example.com:22/in", None, True),  # None: any port
    ],
)
def test_ports(url: str, ports: tuple[int, ...] | None, allowed: bool) -> None:
    if allowed:
        assert resolve_target(url, resolver=lambda h, p: [PUBLIC], ports=ports).addresses
    else:
        with pytest.raises(ConfigurationError, match="is not allowed"):
            resolve_target(url, resolver=lambda h, p: [PUBLIC], ports=ports)
