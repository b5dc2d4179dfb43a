"""One place that turns every API error into a JSON body a person can act on.

Validation errors answer `{"detail": "...", "errors": {"field": ["message", ...]}}`; every other
error answers `{"detail": "..."}`. Nested fields are flattened to paths such as `sensors[0].key`.
"""

import math

from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler

from control.exceptions import CommandNotFound, ControlError, ControlInvalid
from kits.exceptions import KitError, KitInvalid, KitNotFound, KitPermissionDenied, KitStateConflict, MemberNotFound
from telemetry.exceptions import TelemetryError, TelemetryQueryInvalid, TelemetryUnavailable


class ServiceUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "A service we depend on is unavailable; try again shortly."


def api_exception_handler(exc, context):
    exc = _as_api_exception(exc)
    if isinstance(exc, exceptions.ParseError):
        message = str(exc.detail).removeprefix("JSON parse error - ")
        exc = exceptions.ValidationError({"body": [f"The request body is not valid JSON: {message}"]})
    if isinstance(exc, exceptions.UnsupportedMediaType):
        sent = context["request"].content_type or "no content type"
        exc = exceptions.UnsupportedMediaType(
            sent, f"Send the body as JSON with Content-Type: application/json, not {sent}."
        )
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        return Response({"detail": _summary(errors), "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    return exception_handler(exc, context)


def _as_api_exception(exc):
    if isinstance(exc, KitInvalid):
        return exceptions.ValidationError(exc.field_errors)
    if isinstance(exc, KitNotFound | MemberNotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, KitPermissionDenied):
        return exceptions.PermissionDenied(exc.message)
    if isinstance(exc, KitStateConflict):
        return Conflict(exc.message)
    if isinstance(exc, KitError):
        return exceptions.APIException(exc.message)
    if isinstance(exc, ControlInvalid):
        return exceptions.ValidationError(exc.field_errors)
    if isinstance(exc, CommandNotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, ControlError):
        return exceptions.APIException(exc.message)
    if isinstance(exc, TelemetryQueryInvalid):
        return exceptions.ValidationError(exc.field_errors)
    if isinstance(exc, TelemetryUnavailable):
        return ServiceUnavailable(exc.message)
    if isinstance(exc, TelemetryError):
        return exceptions.APIException(exc.message)
    if isinstance(exc, Http404):
        return exceptions.NotFound("Nothing is here.")
    if isinstance(exc, exceptions.Throttled) and not isinstance(exc, TooManyRequests):
        # At least a second, so Retry-After is always sent.
        return TooManyRequests(wait=max(1, math.ceil(exc.wait or 0)))
    return exc


class TooManyRequests(exceptions.Throttled):
    """A caller over its request rate (astroplant_site.api's throttles): 429 with Retry-After."""

    default_detail = "Too many requests:"
    extra_detail_singular = "try again in {wait} second."
    extra_detail_plural = "try again in {wait} seconds."


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "The kit's current state does not allow this."
    default_code = "conflict"


def _flatten(detail, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(detail, dict):
        flat: dict[str, list[str]] = {}
        for key, value in detail.items():
            if isinstance(key, int):  # a ListField's errors are keyed by the item's index
                path = f"{prefix}[{key}]"
            else:
                name = "body" if key == "non_field_errors" and not prefix else key
                path = f"{prefix}.{name}" if prefix else name
            for field, messages in _flatten(value, path).items():
                flat.setdefault(field, []).extend(messages)
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or "body": [str(item) for item in detail]}
        flat = {}
        for index, item in enumerate(detail):
            if item:
                flat.update(_flatten(item, f"{prefix}[{index}]"))
        return flat
    return {prefix or "body": [str(detail)]}


def _summary(errors: dict[str, list[str]]) -> str:
    first_field, first_messages = next(iter(errors.items()))
    more = len(errors) - 1
    tail = f" (and {more} more field{'s' if more > 1 else ''})" if more else ""
    return f"Invalid input: {first_field}: {' '.join(first_messages)}{tail}"
