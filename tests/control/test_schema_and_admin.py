"""The control API in the OpenAPI schema, and kits' configurations in the admin."""

import pytest

from control import services
from control.urls import urlpatterns

pytestmark = pytest.mark.django_db


def test_every_control_route_and_answer_is_in_the_schema(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    routes = {"/" + str(p.pattern).replace("<str:", "{").replace(">", "}") for p in urlpatterns}
    assert routes == {
        "/kits/{id}/configuration",
        "/kits/{id}/configuration/history",
        "/kits/{id}/commands",
        "/kits/{id}/commands/{command_id}",
    }
    assert routes <= set(paths)
    configuration = paths["/kits/{id}/configuration"]
    assert set(configuration) >= {"get", "put"}
    assert set(configuration["put"]["responses"]) == {"200", "400", "401", "403", "404", "415", "429"}
    assert set(configuration["get"]["responses"]) == {"200", "401", "404", "429"}
    assert set(paths["/kits/{id}/commands"]["post"]["responses"]) == {"201", "400", "401", "403", "404", "415", "429"}


def test_the_schema_describes_the_answers_exactly(client):
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()["components"]["schemas"]

    assert set(schemas["ConfigurationOutput"]["properties"]) == {
        "version",
        "desired",
        "reported",
        "status",
        "reason",
        "changed_by",
        "changed_at",
        "applied_at",
    }
    assert set(schemas["CommandOutput"]["properties"]) == {
        "id",
        "name",
        "arguments",
        "status",
        "created_at",
        "expires_at",
        "result",
        "reason",
    }
    # request bodies refuse what they do not know, down to a schedule's periods
    desired = schemas["ConfigurationInputRequest"]["properties"]["desired"]
    assert desired["additionalProperties"] is False
    rule = desired["properties"]["actuators"]["additionalProperties"]
    assert rule["additionalProperties"] is False
    assert rule["properties"]["periods"]["items"]["additionalProperties"] is False


def test_the_admin_shows_a_kits_configuration_and_its_history(client, users, actuated_kits):
    kit = actuated_kits["private"]
    services.configuration_change(kit=kit, desired={"interval_seconds": 10}, user=users["owner"])
    services.configuration_change(kit=kit, desired={"interval_seconds": 25}, user=users["configurer"])
    client.force_login(users["staff"])
    users["staff"].is_superuser = True
    users["staff"].save()

    listing = client.get("/admin/control/kitconfiguration/")
    page = client.get("/admin/control/kitconfiguration/private-kit/change/")

    assert listing.status_code == 200 and "private-kit" in listing.content.decode()
    text = page.content.decode()
    assert page.status_code == 200
    assert "&quot;interval_seconds&quot;: 25" in text and "&quot;interval_seconds&quot;: 10" in text
    assert "configurer" in text and "owner" in text and "pending" in text
    assert client.get("/admin/control/configurationversion/").status_code == 200
    assert client.get("/admin/control/command/").status_code == 200
