"""The kit API: `/kits`, `/kits/{id}` and `/kits/{id}/members`. Each view parses its input, calls
one selector or service, and shapes the output; permission scoping lives in the selectors."""

from types import SimpleNamespace

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAuthenticated
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from astroplant_site.api import BAD_INPUT, NOT_FOUND, NOT_SIGNED_IN, ErrorSerializer, StrictPageNumberPagination

from . import memberships, registry, selectors
from .access import kit_to_manage
from .exceptions import KitPermissionDenied
from .serializers import (
    KitCreateInputSerializer,
    KitOutputSerializer,
    KitUpdateInputSerializer,
    MemberInputSerializer,
    MemberOutputSerializer,
    MemberRoleInputSerializer,
    kit_output_data,
)

FORBIDDEN = OpenApiResponse(ErrorSerializer, description="You may see this kit but not do this to it.")
CONFLICT = OpenApiResponse(
    ErrorSerializer, description="The kit still has its AWS IoT thing and certificate: decommission it first."
)


def _kit_output(request, kit) -> dict:
    kit = selectors.kit_get_visible(user=request.user, kit_id=kit.id)  # fresh, with the caller's role
    return kit_output_data(kit, user=request.user)


class KitListApi(GenericAPIView):
    pagination_class = StrictPageNumberPagination
    serializer_class = KitOutputSerializer

    @extend_schema(
        operation_id="kits_list",
        summary="List the kits you may see",
        description="Public kits for anyone; a grower's own kits too; every kit for staff. Paginated.",
        responses={200: KitOutputSerializer(many=True), 400: BAD_INPUT, 404: NOT_FOUND},
    )
    def get(self, request):
        page = self.paginate_queryset(selectors.kits_listed_for(request.user))
        kit_ids = [row["id"] for row in page]
        sensors = selectors.sensors_of_kits(kit_ids=kit_ids)
        actuators = selectors.actuators_of_kits(kit_ids=kit_ids)
        data = [
            kit_output_data(
                SimpleNamespace(**row),
                user=request.user,
                sensors=sensors.get(row["id"], []),
                actuators=actuators.get(row["id"], []),
            )
            for row in page
        ]
        return self.get_paginated_response(data)

    @extend_schema(
        operation_id="kits_create",
        summary="Register a kit (staff)",
        description=(
            "With its `sensors` and `actuators` (a LED panel, a fan...: key, kind, dimmable). A key names "
            "a sensor or an actuator of the kit, not both: a clash is a 400 on the actuator's key."
        ),
        request=KitCreateInputSerializer,
        responses={201: KitOutputSerializer, 400: BAD_INPUT, 401: NOT_SIGNED_IN, 403: FORBIDDEN},
    )
    def post(self, request):
        if not request.user.is_authenticated:
            raise NotAuthenticated("Sign in as staff to register a kit.")
        if not request.user.is_staff:
            raise KitPermissionDenied("Only staff may register kits.")
        serializer = KitCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        kit = registry.kit_register(
            id=fields.get("id") or None,
            name=fields["name"],
            description=fields["description"],
            admin_email=fields.get("admin", ""),
            public=fields["public"],
            time_zone=fields["time_zone"],
            sensors=fields["sensors"],
            actuators=fields["actuators"],
        )
        return Response(
            _kit_output(request, kit),
            status=status.HTTP_201_CREATED,
            headers={"Location": f"/kits/{kit.id}"},
        )


class KitDetailApi(APIView):
    @extend_schema(
        operation_id="kits_retrieve",
        summary="One kit",
        responses={200: KitOutputSerializer, 404: NOT_FOUND},
    )
    def get(self, request, id: str):
        kit = selectors.kit_get_visible(user=request.user, kit_id=id)
        return Response(kit_output_data(kit, user=request.user))

    @extend_schema(
        operation_id="kits_partial_update",
        summary="Change a kit (owners and staff)",
        description=(
            "Fields left out stay as they are; given `sensors` or `actuators` replace all of the kit's. A key "
            "names a sensor or an actuator of the kit, not both: a clash is a 400 on the entry that clashes."
        ),
        request=KitUpdateInputSerializer,
        responses={200: KitOutputSerializer, 400: BAD_INPUT, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def patch(self, request, id: str):
        kit = kit_to_manage(request, id)
        serializer = KitUpdateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        registry.kit_update(
            kit=kit,
            name=fields.get("name"),
            description=fields.get("description"),
            admin_email=fields.get("admin"),
            public=fields.get("public"),
            time_zone=fields.get("time_zone"),
            sensors=fields.get("sensors"),
            actuators=fields.get("actuators"),
        )
        return Response(_kit_output(request, kit))

    @extend_schema(
        operation_id="kits_destroy",
        summary="Delete a kit (owners and staff)",
        description="A kit provisioned on AWS IoT must be decommissioned (an admin action) before it is deleted.",
        responses={204: None, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND, 409: CONFLICT},
    )
    def delete(self, request, id: str):
        kit = kit_to_manage(request, id)
        registry.kit_delete(kit=kit)
        return Response(status=status.HTTP_204_NO_CONTENT)


class KitMemberListApi(APIView):
    @extend_schema(
        operation_id="kits_members_list",
        summary="Who may see a kit (owners and staff)",
        responses={200: MemberOutputSerializer(many=True), 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def get(self, request, id: str):
        kit = kit_to_manage(request, id)
        members = selectors.memberships_of_kit(kit=kit)
        return Response(MemberOutputSerializer(members, many=True).data)

    @extend_schema(
        operation_id="kits_members_create",
        summary="Give a user a role in a kit (owners and staff)",
        request=MemberInputSerializer,
        responses={201: MemberOutputSerializer, 400: BAD_INPUT, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def post(self, request, id: str):
        kit = kit_to_manage(request, id)
        serializer = MemberInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = memberships.membership_add(kit=kit, **serializer.validated_data)
        return Response(MemberOutputSerializer(membership).data, status=status.HTTP_201_CREATED)


class KitMemberDetailApi(APIView):
    @extend_schema(
        operation_id="kits_members_partial_update",
        summary="Change a member's role (owners and staff)",
        request=MemberRoleInputSerializer,
        responses={200: MemberOutputSerializer, 400: BAD_INPUT, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def patch(self, request, id: str, username: str):
        kit = kit_to_manage(request, id)
        serializer = MemberRoleInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = memberships.membership_change_role(kit=kit, username=username, **serializer.validated_data)
        return Response(MemberOutputSerializer(membership).data)

    @extend_schema(
        operation_id="kits_members_destroy",
        summary="Remove a member (owners and staff)",
        responses={204: None, 400: BAD_INPUT, 401: NOT_SIGNED_IN, 403: FORBIDDEN, 404: NOT_FOUND},
    )
    def delete(self, request, id: str, username: str):
        kit = kit_to_manage(request, id)
        memberships.membership_remove(kit=kit, username=username)
        return Response(status=status.HTTP_204_NO_CONTENT)
