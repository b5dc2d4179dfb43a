"""The OpenAPI schema is valid, served, and names every path and answer the API has."""

from django.urls import get_resolver
from openapi_spec_validator import validate


def test_served_schema_is_valid_openapi_3(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")

    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    validate(schema)  # raises on any violation of the OpenAPI 3 specification


def test_schema_lists_the_seed_paths_and_every_error_answer(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    assert {"/kits", "/kits/{id}", "/kits/{id}/members", "/kits/{id}/members/{username}", "/auth/token"} <= set(paths)
    assert set(paths["/kits/{id}"]) >= {"get", "patch", "delete"}
    assert set(paths["/kits/{id}"]["patch"]["responses"]) == {"200", "400", "401", "403", "404", "415", "429"}
    assert set(paths["/kits/{id}"]["get"]["responses"]) == {"200", "401", "404", "429"}


def test_every_api_route_is_in_the_schema(client):
    paths = set(client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"])
    api_routes = {
        "/" + str(pattern.pattern).replace("<str:", "{").replace(">", "}")
        for pattern in get_resolver().url_patterns
        if str(pattern.pattern).startswith(("kits", "auth/"))
    }
    # kits.urls is included under "": expand it.
    from kits.urls import urlpatterns as kit_patterns

    api_routes |= {"/" + str(p.pattern).replace("<str:", "{").replace(">", "}") for p in kit_patterns}
    assert api_routes <= paths


def test_interactive_docs_load_from_our_own_static_files(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower()
