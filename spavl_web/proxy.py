"""Forwarded headers, believed only from the proxies the deployment names.

gunicorn may be reachable directly (compose publishes its port), so any client could send
``X-Forwarded-Proto: https`` or ``X-Forwarded-For: 10.0.0.1``. This middleware runs first: from
an address outside ``TRUSTED_PROXIES`` (``SPAVL_TRUSTED_PROXIES``, addresses or networks) it
drops those headers; from a trusted proxy it keeps them and sets ``REMOTE_ADDR`` to the client
the proxies saw (the right-most untrusted address of ``X-Forwarded-For``), so login throttling
counts the real client and not the proxy.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponseBase

FORWARDED = ("HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def trusted_networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)
    except ValueError as error:
        raise ImproperlyConfigured(f"SPAVL_TRUSTED_PROXIES: {error}") from None


def is_trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        return _within(ipaddress.ip_address(address.strip()), networks)
    except ValueError:
        return False


def _within(
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address, networks: tuple[Network, ...]
) -> bool:
    return any(ip in network for network in networks)


class TrustedProxyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response
        trusted_networks(tuple(settings.TRUSTED_PROXIES))  # a bad entry fails at startup

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        networks = trusted_networks(tuple(settings.TRUSTED_PROXIES))
        meta = request.META
        if not is_trusted(meta.get("REMOTE_ADDR", ""), networks):
            for header in FORWARDED:
                meta.pop(header, None)
        elif chain := meta.get("HTTP_X_FORWARDED_FOR", ""):
            client = forwarded_client(chain, networks)
            if client is not None:
                meta["REMOTE_ADDR"] = client
        return self.get_response(request)


def forwarded_client(chain: str, networks: tuple[Network, ...]) -> str | None:
    """The right-most address of ``X-Forwarded-For`` that is not a trusted proxy; None when a
    hop is not an address (what lies left of it was never checked by a proxy we trust)."""
    for hop in reversed([hop.strip() for hop in chain.split(",")]):
        try:
            ip = ipaddress.ip_address(hop)
        except ValueError:
            return None
        if not _within(ip, networks):
            return str(ip)
    return None
