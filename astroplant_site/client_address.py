"""Which address a request comes from, behind the load balancer. One place for every reader:
sign-in throttling (django-axes, AXES_CLIENT_IP_CALLABLE), the API's request-rate throttles and the
log of certificate-bundle downloads."""

from django.conf import settings
from ipware import get_client_ip


def client_address(request) -> str:
    """The client's address as the outermost of the TRUSTED_PROXY_COUNT proxies saw it.

    Each proxy appends the address it got the request from to X-Forwarded-For, and the last one
    is the socket's peer (REMOTE_ADDR). So behind N proxies the client is the header's N-th entry
    from the right; whatever stands left of it the client may have written itself, and is never
    read. With N = 0, or when the header holds fewer than N addresses (a request that did not
    pass every proxy), it is the socket's address: one no client can forge."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies > 0:
        # django-ipware counts the proxies listed in the header; the last of ours is not in it
        # (it is the socket's peer). Not strict: a malformed entry the client put left of the
        # trusted ones is skipped, rather than sending everyone to the proxy's address.
        address, _routable = get_client_ip(
            request, proxy_count=proxies - 1, request_header_order=["HTTP_X_FORWARDED_FOR"], strict=False
        )
        if address:
            return address
    return request.META.get("REMOTE_ADDR", "")
