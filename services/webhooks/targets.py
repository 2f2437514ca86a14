"""Where webhooks may be sent: public internet addresses only (an SSRF guard).

A merchant names the URL; without a guard, Lastmile's workers would POST to whatever
it resolves to, inside the platform's network too (databases, cloud metadata at
169.254.169.254, admin ports on localhost). So:

- a URL is refused when registered if its host, as written, is not a public address:
  every spelling of an IPv4 address the resolver accepts (`2130706433`, `0x7f000001`,
  `127.1`, `0177.0.0.1`, `0`) other than the dotted quad is refused outright; an IPv6
  address is judged with the IPv4 address it embeds (NAT64, IPv4-mapped, 6to4,
  Teredo); names of one label or under a special-use or internal suffix
  (`.localhost`, `.local`, `.internal`, ...) are refused;
- every delivery resolves the host once, refuses if any address is not public, and
  connects to an address it checked (`GuardedBackend`), so a name that resolves to a
  public address for the check and to an internal one a moment later (DNS rebinding)
  never reaches the inside.

Development setups, whose receivers are on localhost, allow private targets with
LASTMILE_WEBHOOK_PRIVATE_TARGETS=true (`make run` and the test suite do).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from services.core.settings import get_settings

NOT_SENT = "Not sent: "
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})
# Names that never denote a host on the public internet (RFC 6761, RFC 6762, RFC 8375,
# and the suffixes clouds and companies use inside their networks).
INTERNAL_SUFFIXES = (
    ".localhost", ".local", ".localdomain", ".internal", ".intranet", ".lan", ".home",
    ".home.arpa", ".corp", ".private", ".arpa", ".invalid",
)  # fmt: skip
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (RFC 6052 NAT64).
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def private_targets_allowed() -> bool:
    return get_settings().webhook_private_targets


def literal_refusal(host: str) -> str | None:
    """Why a URL's host, as written, cannot receive webhooks; None if it may."""
    if private_targets_allowed():
        return None
    name = host.lower().rstrip(".")
    if name in LOCAL_NAMES or name.endswith(INTERNAL_SUFFIXES):
        return f"{host} is not a public name."
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        pass
    else:
        return None if public(address) else f"{host} is not a public address."
    if _spells_ipv4(name):
        return f"{host} is an IPv4 address written other than as four decimal numbers."
    if "." not in name:
        return f"{host} is a name of one label, not a public name."
    return None


def public(address: Address) -> bool:
    """Whether `address` is on the public internet, and so is any IPv4 one it embeds."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and not public(embedded):
            return False
    return address.is_global and not address.is_multicast


def resolve_public(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to, each checked; ConnectError (its message starting
    with NOT_SENT) if the host or any of them is not public. One resolution only."""
    if refusal := literal_refusal(host):
        raise httpcore.ConnectError(NOT_SENT + refusal)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        raise httpcore.ConnectError(f"{NOT_SENT}{host} does not resolve: {error}") from error
    addresses = list(dict.fromkeys(str(entry[4][0]) for entry in found))
    if not private_targets_allowed():
        for text in addresses:
            if not public(ipaddress.ip_address(text)):
                raise httpcore.ConnectError(
                    f"{NOT_SENT}{host} resolves to {text}, not a public address."
                )
    return addresses


class GuardedBackend(httpcore.SyncBackend):
    """Connects to an address of the host it checked itself (`resolve_public`), never
    one the system resolver might give a second time; TLS still verifies the name."""

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = resolve_public(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as error:
                last = error
        assert last is not None
        raise last


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over `GuardedBackend`, ignoring proxy settings from the
    environment (a proxy would resolve the name itself)."""

    def __init__(self) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool with the default backend and has no argument for another.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(), network_backend=GuardedBackend()
        )


def _spells_ipv4(name: str) -> bool:
    """Whether the resolver would read `name` as an IPv4 address (inet_aton's forms:
    one to four numbers, each decimal, octal or hexadecimal)."""
    try:
        socket.inet_aton(name)
    except OSError:
        return False
    return True


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None
