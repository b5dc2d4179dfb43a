"""Which address a request comes from, with and without trusted proxies in front."""

import pytest
from django.test import RequestFactory

from astroplant_site.client_address import client_address

BALANCER = "10.0.0.2"  # the socket's peer behind a load balancer


def _request(forwarded_for: str | None = None, remote: str = BALANCER):
    headers = {"REMOTE_ADDR": remote}
    if forwarded_for is not None:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return RequestFactory().get("/kits", **headers)


@pytest.mark.parametrize(
    ("proxies", "forwarded_for", "client"),
    [
        # No proxy (local): the socket's address; a header is whatever the client wrote.
        (0, None, BALANCER),
        (0, "203.0.113.9", BALANCER),
        # One load balancer: the address it appended, the header's last.
        (1, "203.0.113.9", "203.0.113.9"),
        # ... whatever the client put before it
        (1, "198.51.100.1, 203.0.113.9", "203.0.113.9"),
        (1, "not-an-address, 203.0.113.9", "203.0.113.9"),
        (1, "2001:db8::7", "2001:db8::7"),
        # A CDN, then the balancer: the address the CDN saw, the header's second from the right.
        (2, "198.51.100.1, 203.0.113.9, 192.0.2.50", "203.0.113.9"),
        # Fewer addresses than proxies (the request skipped one), or none: the socket's address.
        (1, None, BALANCER),
        (1, "", BALANCER),
        (2, "203.0.113.9", BALANCER),
    ],
)
def test_the_client_is_the_address_the_outermost_trusted_proxy_saw(settings, proxies, forwarded_for, client):
    # Given TRUSTED_PROXY_COUNT proxies in front
    settings.TRUSTED_PROXY_COUNT = proxies

    # When a request arrives with that X-Forwarded-For, then its client is
    assert client_address(_request(forwarded_for)) == client
