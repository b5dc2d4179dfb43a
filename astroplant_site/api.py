"""What every part of the API shares: the strict request bodies, the error shapes and their
schema answers, pagination, request-rate throttles, and the sign-in serializers. (Errors become
these shapes in `api_errors.py`.)"""

from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from .client_address import client_address

# --- Request bodies ---------------------------------------------------------------------------


class StrictInputSerializer(serializers.Serializer):
    """Refuses fields it does not know, so a typo is an error rather than silently ignored."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


# The JSON types each kind of field takes. DRF alone would turn `false` into 0.0 and `1` into "1":
# a value of the wrong type is refused instead, as the schema says, with the field's own message.
JSON_TYPES: list[tuple[type, tuple[type, ...]]] = [
    (serializers.BooleanField, (bool,)),
    (serializers.FloatField, (int, float)),
    (serializers.CharField, (str,)),
]


class JsonBodySerializer(StrictInputSerializer):
    """A JSON request body: unknown fields and values of the wrong JSON type are refused."""

    def to_internal_value(self, data):
        if isinstance(data, dict):
            wrong = {}
            for name, value in data.items():
                field = self.fields.get(name)
                if field is None or value is None:
                    continue  # unknown fields and nulls have their own messages
                for kind, types in JSON_TYPES:
                    if isinstance(field, kind):
                        if isinstance(value, bool) and bool not in types or not isinstance(value, types):
                            wrong[name] = [field.error_messages["invalid"]]
                        break
                # DRF trims a string before checking its length; the schema's maxLength is the
                # length sent, so "  name" one over the limit is refused, not trimmed into it.
                limit = getattr(field, "max_length", None)
                if name not in wrong and isinstance(value, str) and limit and len(value) > limit:
                    wrong[name] = [field.error_messages["max_length"].format(max_length=limit)]
            if wrong:
                raise serializers.ValidationError(wrong)
        return super().to_internal_value(data)


# --- Errors -----------------------------------------------------------------------------------


class ErrorSerializer(serializers.Serializer):
    """Every error other than a validation error: one sentence saying what is wrong."""

    detail = serializers.CharField()


class ValidationErrorSerializer(serializers.Serializer):
    """A 400: `detail` sums it up; `errors` maps each offending field to its messages."""

    detail = serializers.CharField()
    errors = serializers.DictField(child=serializers.ListField(child=serializers.CharField()))


# The error answers the views list in their schema.
BAD_INPUT = OpenApiResponse(ValidationErrorSerializer, description="The input is invalid; `errors` says where.")
NOT_SIGNED_IN = OpenApiResponse(ErrorSerializer, description="Sign in first (send `Authorization: Token <token>`).")
NOT_FOUND = OpenApiResponse(ErrorSerializer, description="No such kit, or one you may not see: the two look alike.")


# --- Pagination -------------------------------------------------------------------------------


class StrictPageNumberPagination(PageNumberPagination):
    """`?page=` and `?page_size=`. A page size that is not a whole number from 1 to 200 is refused
    with a 400 saying so (DRF would quietly use the default); a page that is not a whole number or
    does not exist is a 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_size(self, request):
        text = request.query_params.get(self.page_size_query_param)
        if text is None:
            return self.page_size
        if not (text.isascii() and text.isdigit() and len(text) <= 9 and 1 <= int(text) <= self.max_page_size):
            raise ValidationError(
                {"page_size": [f"Use a whole number from 1 to {self.max_page_size}, not '{text[:50]}'."]}
            )
        return int(text)

    last_page_strings = ()  # `?page=last` is not a page number

    def get_page_number(self, request, paginator):
        # DRF reads an empty `?page=` as page 1; it is no page number either: 404 "Invalid page."
        return request.query_params.get(self.page_query_param, 1)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        bounds = {
            self.page_query_param: {"minimum": 1},
            self.page_size_query_param: {"minimum": 1, "maximum": self.max_page_size},
        }
        for parameter in parameters:
            parameter["schema"].update(bounds.get(parameter["name"], {}))
        return parameters


# --- Request rates -----------------------------------------------------------------------------
# Rates per scope are REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (settings/base.py); the counts are
# kept in the default cache, which every web worker shares.


class CallerThrottle(SimpleRateThrottle):
    """Counts a scope's requests per caller: a signed-in user by their id, anyone else by the
    client's address (astroplant_site/client_address.py, not the load balancer's).

    DRF's rule: a request is refused while the caller made `N` in the last period. DRF keeps the
    times as one list in the cache, read and written back whole on every request; on Redis
    (astroplant_site/cache.py) the times are a sorted set, counted and added to in one atomic
    round trip, so concurrent requests of one caller are all counted."""

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES[self.scope]  # read when asked, not at import

    def allow_request(self, request, view):
        sliding_window_add = getattr(self.cache, "sliding_window_add", None)
        if sliding_window_add is None:
            self.in_period = None
            return super().allow_request(request, view)
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        allowed, self.in_period, self.oldest = sliding_window_add(
            self.key, now=self.now, period=self.duration, limit=self.num_requests
        )
        return allowed

    def wait(self):
        if self.in_period is None:
            return super().wait()
        # DRF's estimate, from the count and the oldest time rather than the list of times
        remaining = self.duration - (self.now - self.oldest) if self.oldest is not None else self.duration
        available = self.num_requests - self.in_period + 1
        return remaining / available if available > 0 else None

    def get_ident(self, request):
        return client_address(request)

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            caller = f"user-{request.user.pk}"
        else:
            caller = f"address-{self.get_ident(request)}"
        return f"throttle-{self.scope}-{caller}"


class AnonThrottle(CallerThrottle):
    """Every request of a caller not signed in."""

    scope = "anon"

    def get_cache_key(self, request, view):
        if request.user and request.user.is_authenticated:
            return None
        return super().get_cache_key(request, view)


class UserThrottle(CallerThrottle):
    """Every request of a signed-in caller."""

    scope = "user"

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        return super().get_cache_key(request, view)


# --- Sign-in (astroplant_site/auth_api.py) ----------------------------------------------------


class TokenInputSerializer(JsonBodySerializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})


class TokenOutputSerializer(serializers.Serializer):
    token = serializers.CharField()
    expiry = serializers.DateTimeField(allow_null=True, help_text="When the token lapses unless used before.")
