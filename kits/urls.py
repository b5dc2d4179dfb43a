from django.urls import path

from . import api

# The seed's paths exactly, without trailing slashes: the mobile app relies on them.
urlpatterns = [
    path("kits", api.KitListApi.as_view(), name="kit-list"),
    path("kits/<str:id>", api.KitDetailApi.as_view(), name="kit-detail"),
    path("kits/<str:id>/members", api.KitMemberListApi.as_view(), name="kit-member-list"),
    path("kits/<str:id>/members/<str:username>", api.KitMemberDetailApi.as_view(), name="kit-member-detail"),
]
