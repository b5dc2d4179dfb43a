"""The control API: `/kits/{id}/configuration` (and its history) and `/kits/{id}/commands`. Each
view parses its input, calls one service or selector, and shapes the output. Who may see a kit
may read these; its configurers, owners and staff may change them."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from astroplant_site.api import BAD_INPUT, NOT_FOUND, NOT_SIGNED_IN, ErrorSerializer, StrictPageNumberPagination
from kits import selectors as kit_selectors
from kits.access import kit_to_configure

from . import selectors, services
from .serializers import (
    CommandInputSerializer,
    CommandOutputSerializer,
    ConfigurationInputSerializer,
    ConfigurationOutputSerializer,
    ConfigurationVersionOutputSerializer,
)

FORBIDDEN = OpenApiResponse(
    ErrorSerializer, description="You may see this kit but not configure it (configurers, owners and staff may)."
)
COMMAND_NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description="No such kit or command, or a kit you may not see: they look alike."
)


class ConfigurationApi(APIView):
    @extend_schema(
        operation_id="kits_configuration_retrieve",
        summary="A kit's configuration: desired, reported, and whether the kit applied it",
        responses={200: ConfigurationOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request, id: str):
        kit = kit_selectors.kit_get_visible(user=request.user, kit_id=id)
        return Response(ConfigurationOutputSerializer(selectors.configuration_of_kit(kit=kit)).data)

    @extend_schema(
        operation_id="kits_configuration_update",
        summary="Change a kit's configuration (configurers, owners, staff)",
        description=(
            "Replaces the desired configuration as the next version and sends it to the kit (a retained "
            "MQTT message, after the change is stored). `status` is pending until the kit reports."
        ),
        request=ConfigurationInputSerializer,
        responses={
            200: ConfigurationOutputSerializer,
            400: BAD_INPUT,
            401: NOT_SIGNED_IN,
            403: FORBIDDEN,
            404: NOT_FOUND,
        },
    )
    def put(self, request, id: str):
        kit = kit_to_configure(request, id)
        serializer = ConfigurationInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.configuration_change(kit=kit, desired=serializer.validated_data["desired"], user=request.user)
        return Response(ConfigurationOutputSerializer(selectors.configuration_of_kit(kit=kit)).data)


class ConfigurationHistoryApi(GenericAPIView):
    pagination_class = StrictPageNumberPagination
    serializer_class = ConfigurationVersionOutputSerializer

    @extend_schema(
        operation_id="kits_configuration_history_list",
        summary="Every version of a kit's configuration, newest first, with who made it and when",
        responses={200: ConfigurationVersionOutputSerializer(many=True), 400: BAD_INPUT, 404: NOT_FOUND},
    )
    def get(self, request, id: str):
        kit = kit_selectors.kit_get_visible(user=request.user, kit_id=id)
        page = self.paginate_queryset(selectors.configuration_history(kit=kit))
        return self.get_paginated_response(ConfigurationVersionOutputSerializer(page, many=True).data)


class CommandListApi(GenericAPIView):
    pagination_class = StrictPageNumberPagination
    serializer_class = CommandOutputSerializer

    @extend_schema(
        operation_id="kits_commands_list",
        summary="A kit's commands, newest first",
        responses={200: CommandOutputSerializer(many=True), 400: BAD_INPUT, 404: NOT_FOUND},
    )
    def get(self, request, id: str):
        kit = kit_selectors.kit_get_visible(user=request.user, kit_id=id)
        services.commands_expire(kit_ids=[kit.id])  # what a reader sees is never out of date
        page = self.paginate_queryset(selectors.commands_of_kit(kit=kit))
        return self.get_paginated_response(CommandOutputSerializer(page, many=True).data)

    @extend_schema(
        operation_id="kits_commands_create",
        summary="Send a kit a command (configurers, owners, staff)",
        description=(
            "Queued, then sent to the kit over MQTT; `status` becomes sent, then succeeded or failed as the "
            "kit answers, or expired if it does not answer before `expires_at`."
        ),
        request=CommandInputSerializer,
        responses={201: CommandOutputSerializer, 400: BAD_INPUT, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, id: str):
        kit = kit_to_configure(request, id)
        serializer = CommandInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        command = services.command_create(kit=kit, user=request.user, **serializer.validated_data)
        return Response(
            CommandOutputSerializer(command).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/kits/{kit.id}/commands/{command.id}"},
        )


class CommandDetailApi(APIView):
    @extend_schema(
        operation_id="kits_commands_retrieve",
        summary="One command of a kit, with the kit's answer",
        responses={200: CommandOutputSerializer, 404: COMMAND_NOT_FOUND},
    )
    def get(self, request, id: str, command_id: str):
        kit = kit_selectors.kit_get_visible(user=request.user, kit_id=id)
        services.commands_expire(kit_ids=[kit.id])
        return Response(CommandOutputSerializer(selectors.command_of_kit(kit=kit, command_id=command_id)).data)
