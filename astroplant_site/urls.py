from django.contrib import admin
from django.urls import include, path
from django.views.generic import TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from .auth_api import TokenApi, TokenRevokeApi
from .errors import page_not_found, server_error
from .health import healthz

handler404 = page_not_found
handler500 = server_error

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("auth/token", TokenApi.as_view(), name="auth-token"),
    path("auth/token/revoke", TokenRevokeApi.as_view(), name="auth-token-revoke"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("healthz", healthz, name="healthz"),
    # Before kits.urls: /kits/<id>/data is telemetry's, not a kit sub-resource of kits/.
    path("", include("telemetry.urls")),
    path("", include("kits.urls")),
]
