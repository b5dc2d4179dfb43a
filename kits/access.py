"""The kit an API view acts on, if the caller may: a kit they may not see is a 404 (exactly as if it
did not exist), then 401 for anonymous callers and 403 for members without the right role."""

from rest_framework.exceptions import NotAuthenticated

from . import selectors
from .exceptions import KitPermissionDenied
from .models import Kit


def kit_to_manage(request, kit_id: str) -> Kit:
    """For changing the kit itself and its members: owners and staff."""
    kit = selectors.kit_get_visible(user=request.user, kit_id=kit_id)
    if not request.user.is_authenticated:
        raise NotAuthenticated("Sign in to change a kit.")
    if not selectors.kit_can_manage(user=request.user, kit=kit):
        raise KitPermissionDenied("Only the kit's owners and staff may do this.")
    return kit


def kit_to_configure(request, kit_id: str) -> Kit:
    """For the kit's configuration and commands: configurers, owners and staff."""
    kit = selectors.kit_get_visible(user=request.user, kit_id=kit_id)
    if not request.user.is_authenticated:
        raise NotAuthenticated("Sign in to configure a kit.")
    if not selectors.kit_can_configure(user=request.user, kit=kit):
        raise KitPermissionDenied("Only the kit's configurers, owners and staff may do this.")
    return kit
