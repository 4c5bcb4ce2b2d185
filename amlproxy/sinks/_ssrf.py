"""The address guard of outgoing callbacks (server-side request forgery).

A callback URL comes from configuration that users control, so the sink must not become
a way to reach the Lambda's own network: the instance metadata service
(169.254.169.254), VPC hosts, localhost. :func:`resolve_target` therefore

- accepts ``https`` only, with no credentials in the URL, to an allowed port (443 unless
  the caller allows others: ``AMLPROXY_CALLBACK_PORTS``);
- reads every spelling of an IP literal the way the C library would (``2130706433``,
  ``0177.0.0.1``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) instead of trusting that a string
  which is not dotted-quad must be a name;
- resolves names once and checks ALL the addresses; any forbidden one refuses the URL;
- returns the checked addresses, which the caller connects to directly: there is no
  second lookup, hence no DNS-rebinding window between the check and the connection.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from amlproxy.errors import ConfigurationError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]
"""``resolver(host, port)`` -> the IP addresses (as text) of ``host``."""

DEFAULT_PORTS: tuple[int, ...] = (443,)
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")  # carrier-grade NAT (RFC 6598)
# IETF protocol assignments (RFC 6890), all of it: Python only calls parts of it private
# (none before 3.12.4), and 192.0.0.192 is the instance metadata address of some clouds
_IETF_PROTOCOL = ipaddress.IPv4Network("192.0.0.0/24")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # embeds an IPv4 address (RFC 6052)
_NUMERIC_PART = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)\Z")


@dataclass(frozen=True, slots=True)
class Target:
    """A checked callback destination: connect to one of ``addresses``, present ``host``
    for SNI, certificate checking and the Host header, and request ``path``."""

    host: str
    port: int
    path: str
    addresses: tuple[str, ...]


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host`` (TCP), in its order, deduplicated."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def check_url(
    url: str, *, allow_private: bool = False, ports: Collection[int] | None = DEFAULT_PORTS
) -> Target:
    """Checks ``url`` without any lookup; raises ConfigurationError if it is refused.

    For an IP literal the returned ``addresses`` hold it; for a name they are empty (see
    :func:`resolve_target`). ``ports`` are the ports the URL may name (None: any).
    ``allow_private=True`` lifts the address checks (local receivers in tests and
    development); it never lifts the https, credentials and port requirements.
    """
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or 443
    except ValueError as exc:  # an invalid bracketed IPv6 host, a bad port
        raise ConfigurationError(f"invalid callback URL: {exc}") from exc
    if parts.scheme.lower() != "https":
        raise ConfigurationError(f"callback URL must use https, not {parts.scheme or 'none'!r}")
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError("callback URL must not carry credentials")
    if not host:
        raise ConfigurationError("callback URL has no host")
    if ports is not None and port not in ports:
        allowed = ", ".join(str(p) for p in sorted(ports)) or "none"
        raise ConfigurationError(
            f"callback URL port {port} is not allowed (allowed: {allowed}; "
            "AMLPROXY_CALLBACK_PORTS allows others)"
        )
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    literal = ip_literal(host, bracketed=parts.netloc.rpartition("@")[2].startswith("["))
    if literal is not None:
        if not allow_private:
            _refuse_if_forbidden(host, literal)
        return Target(host, port, path, (str(literal),))
    name = host.rstrip(".")
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise ConfigurationError(f"callback host {host!r} is a loopback name")
    return Target(host, port, path, ())


def resolve_target(
    url: str,
    *,
    resolver: Resolver | None = None,
    allow_private: bool = False,
    ports: Collection[int] | None = DEFAULT_PORTS,
) -> Target:
    """:func:`check_url`, then resolves a name and checks every address it gets.

    Raises ConfigurationError if the URL or any resolved address is refused; lets
    ``OSError`` (``socket.gaierror``) from the resolver through.
    """
    target = check_url(url, allow_private=allow_private, ports=ports)
    if target.addresses:
        return target
    host, port = target.host, target.port
    addresses = tuple((resolver or system_resolver)(host, port))
    if not addresses:
        raise ConfigurationError(f"callback host {host!r} resolves to no address")
    for text in addresses:
        try:
            address = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError as exc:
            raise ConfigurationError(f"resolver gave a non-address {text!r}") from exc
        if not allow_private:
            _refuse_if_forbidden(host, address)
    return Target(host, port, target.path, addresses)


def ip_literal(host: str, *, bracketed: bool = False) -> IPAddress | None:
    """The address ``host`` spells, or None if it is a name.

    Understands what ``inet_aton`` accepts: 1 to 4 parts, each decimal, octal (leading 0)
    or hexadecimal (0x), the last part filling the remaining bytes.
    """
    if bracketed or ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError as exc:
            raise ConfigurationError(f"invalid IPv6 address {host!r}") from exc
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()  # "127.0.0.1." is still an address
    if not 1 <= len(parts) <= 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        return None
    try:
        values = [_part_value(p) for p in parts]
    except ValueError as exc:
        raise ConfigurationError(f"invalid IPv4 address {host!r}") from exc
    *head, last = values
    width = 8 * (4 - len(head))
    if any(v > 255 for v in head) or last >= 1 << width:
        raise ConfigurationError(f"invalid IPv4 address {host!r}")
    number = 0
    for value in head:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << width | last)


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a callback must not connect to ``address``, or None if it may."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = forbidden_reason(embedded)
            return f"embeds {embedded}, {inner}" if inner else None
        if address.is_site_local:
            return "site-local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
        ("shared address space", address.version == 4 and address in _SHARED),
        ("an IETF protocol assignment", address.version == 4 and address in _IETF_PROTOCOL),
        ("not globally routable", not address.is_global),
    )
    return next((reason for reason, hit in checks if hit), None)


def _refuse_if_forbidden(host: str, address: IPAddress) -> None:
    reason = forbidden_reason(address)
    if reason is not None:
        raise ConfigurationError(
            f"callback host {host!r} is refused: {address} is {reason} "
            "(pass allow_private=True only for local testing)"
        )


def _part_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8)
    return int(part)
