from django.urls import path

from . import api

# The seed's path exactly, without a trailing slash, like the kits paths.
urlpatterns = [
    path("kits/<str:id>/data", api.KitDataApi.as_view(), name="kit-data"),
]
