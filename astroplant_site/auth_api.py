"""Signing in for the mobile app: `POST /auth/token` trades a username and password for a token.

Tokens are knox tokens: only their hash is stored, so a database leak reveals none. Failed
sign-ins are counted by django-axes, which refuses a username from one address after too many."""

from django.contrib.auth import authenticate
from django.http import JsonResponse
from django.shortcuts import render
from drf_spectacular.utils import OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import status
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from .api import ErrorSerializer, TokenInputSerializer, TokenOutputSerializer, ValidationErrorSerializer
from .token_auth import expired_tokens_delete


class TokenApi(APIView):
    authentication_classes: list = []  # the credentials are in the body

    def get_authenticate_header(self, request):
        return "Token"  # so a failed sign-in is a 401, as for every other endpoint

    @extend_schema(
        operation_id="auth_token_create",
        summary="Sign in: get an API token",
        request=TokenInputSerializer,
        responses={
            200: TokenOutputSerializer,
            400: OpenApiResponse(ValidationErrorSerializer, description="A field is missing or malformed."),
            401: OpenApiResponse(ErrorSerializer, description="Wrong username or password."),
            429: OpenApiResponse(ErrorSerializer, description="Too many failed sign-ins; wait and try again."),
        },
    )
    def post(self, request):
        serializer = TokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        # axes needs Django's own request to count the failure against the caller's address.
        user = authenticate(request=request._request, **serializer.validated_data)
        if user is None:
            if getattr(request._request, "axes_locked_out", False):
                return sign_in_locked_out_response(request._request)
            raise AuthenticationFailed("Wrong username or password.")
        expired_tokens_delete(user=user)  # not on every request, as knox would (token_auth.py)
        instance, token = AuthToken.objects.create(user)
        return Response({"token": token, "expiry": instance.expiry}, status=status.HTTP_200_OK)


class TokenRevokeApi(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="auth_token_destroy",
        summary="Sign out: revoke the token this request carries",
        request=None,
        responses={204: None, 401: OpenApiResponse(ErrorSerializer, description="No valid token was sent.")},
    )
    def delete(self, request):
        if isinstance(request.auth, AuthToken):
            request.auth.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def sign_in_locked_out_response(request, original_response=None, credentials=None):
    """What a locked-out caller sees: JSON for the API, a page for the browser (axes calls this)."""
    from django.conf import settings

    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = f"Too many failed sign-ins for this user from your address. Try again in {minutes} minutes."
    headers = {"Retry-After": str(minutes * 60)}
    if request.path.startswith("/auth/"):
        return JsonResponse({"detail": message}, status=429, headers=headers)
    response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = headers["Retry-After"]
    return response
