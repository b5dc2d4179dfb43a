from django.urls import path

from . import api

urlpatterns = [
    path("kits/<str:id>/configuration", api.ConfigurationApi.as_view(), name="kit-configuration"),
    path(
        "kits/<str:id>/configuration/history",
        api.ConfigurationHistoryApi.as_view(),
        name="kit-configuration-history",
    ),
    path("kits/<str:id>/commands", api.CommandListApi.as_view(), name="kit-command-list"),
    path("kits/<str:id>/commands/<str:command_id>", api.CommandDetailApi.as_view(), name="kit-command-detail"),
]
