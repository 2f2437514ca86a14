"""Where webhooks may be sent: public internet addresses only (an SSRF guard).

A merchant names the URL; without a guard, Lastmile's workers would POST to whatever
it resolves to, inside the platform's network too (databases, cloud metadata at
169.254.169.254, admin ports on localhost). So a URL naming a non-public address is
refused when registered, and every delivery re-resolves the host and refuses to send
if any address is not public (DNS can change after registration). Development setups,
whose receivers are on localhost, allow private targets with
LASTMILE_WEBHOOK_PRIVATE_TARGETS=true (`make run` and the test suite do).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from services.core.settings import get_settings

LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain"})


def private_targets_allowed() -> bool:
    return get_settings().webhook_private_targets


def literal_refusal(host: str) -> str | None:
    """Why a URL's host, as written, cannot receive webhooks; None if it may."""
    if private_targets_allowed():
        return None
    if host.lower().rstrip(".") in LOCAL_NAMES:
        return f"{host} is this machine, not a public address."
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None  # a name: checked against what it resolves to at each delivery
    return None if _public(address) else f"{host} is not a public address."


def delivery_refusal(url: str) -> str | None:
    """Why a delivery to `url` must not be attempted now; None if it may."""
    if private_targets_allowed():
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if refusal := literal_refusal(host):
        return refusal
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as error:
        return f"{host} does not resolve: {error}"
    for *_, address in found:
        ip = ipaddress.ip_address(address[0])
        if not _public(ip):
            return f"{host} resolves to {ip}, not a public address."
    return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return address.is_global and not address.is_multicast
