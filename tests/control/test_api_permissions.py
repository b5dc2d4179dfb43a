"""Who may read and change a kit's configuration and commands: whoever may see the kit reads them;
its configurers, owners and staff change them; a viewer or a stranger to a public kit is refused
(403), anyone not signed in is asked to (401), and a kit one may not see does not exist (404)."""

import pytest

from control import services
from control.models import Command, ConfigurationVersion

pytestmark = pytest.mark.django_db

DESIRED = {"interval_seconds": 30}
COMMAND = {"name": "ping", "arguments": {}}
CALLERS = ("anonymous", "nonmember", "viewer", "configurer", "owner", "staff")


def client_for(make_client, users, caller):
    return make_client(None if caller == "anonymous" else users[caller])


def a_command(kit):
    return services.command_create(kit=kit, name="ping", arguments={}, user=None)


READS = {
    "configuration": lambda client, kit: client.get(f"/kits/{kit.id}/configuration"),
    "history": lambda client, kit: client.get(f"/kits/{kit.id}/configuration/history"),
    "commands": lambda client, kit: client.get(f"/kits/{kit.id}/commands"),
    "command": lambda client, kit: client.get(f"/kits/{kit.id}/commands/{a_command(kit).id}"),
}
WRITES = {
    "configuration": lambda client, kit: client.put(
        f"/kits/{kit.id}/configuration", {"desired": DESIRED}, format="json"
    ),
    "command": lambda client, kit: client.post(f"/kits/{kit.id}/commands", COMMAND, format="json"),
}

READ_EXPECTED = {
    "private": {"anonymous": 404, "nonmember": 404, "viewer": 200, "configurer": 200, "owner": 200, "staff": 200},
    "public": dict.fromkeys(CALLERS, 200),
}
WRITE_OK = {"configuration": 200, "command": 201}
WRITE_EXPECTED = {
    "private": {"anonymous": 404, "nonmember": 404, "viewer": 403, "configurer": "ok", "owner": "ok", "staff": "ok"},
    "public": {"anonymous": 401, "nonmember": 403, "viewer": 403, "configurer": "ok", "owner": "ok", "staff": "ok"},
}


@pytest.mark.parametrize("which", ["private", "public"])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", sorted(READS))
def test_who_may_read(make_client, users, actuated_kits, which, caller, endpoint):
    kit = actuated_kits[which]

    response = READS[endpoint](client_for(make_client, users, caller), kit)

    assert response.status_code == READ_EXPECTED[which][caller], response.content


@pytest.mark.parametrize("which", ["private", "public"])
@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("endpoint", sorted(WRITES))
def test_who_may_change(make_client, users, actuated_kits, which, caller, endpoint):
    kit = actuated_kits[which]
    expected = WRITE_EXPECTED[which][caller]

    response = WRITES[endpoint](client_for(make_client, users, caller), kit)

    assert response.status_code == (WRITE_OK[endpoint] if expected == "ok" else expected), response.content
    stored = ConfigurationVersion.objects.filter(kit=kit) if endpoint == "configuration" else Command.objects
    assert stored.filter(kit=kit).exists() == (expected == "ok")
    if expected != "ok":
        assert set(response.json()) == {"detail"}


def test_a_refusal_says_who_may(make_client, users, actuated_kits):
    response = make_client(users["viewer"]).put("/kits/private-kit/configuration", {"desired": DESIRED}, format="json")

    assert response.status_code == 403
    assert response.json() == {"detail": "Only the kit's configurers, owners and staff may do this."}


def test_a_command_is_read_only_through_its_own_kit(make_client, users, actuated_kits):
    command = a_command(actuated_kits["public"])
    client = make_client(users["owner"])

    assert client.get(f"/kits/public-kit/commands/{command.id}").status_code == 200
    assert client.get(f"/kits/private-kit/commands/{command.id}").status_code == 404
    assert client.get("/kits/private-kit/commands/not-a-uuid").status_code == 404
    assert client.get("/kits/private-kit/commands/00000000-0000-0000-0000-000000000000").status_code == 404


def test_a_kit_that_does_not_exist_answers_404_everywhere(make_client, users):
    client = make_client(users["staff"])

    assert client.get("/kits/no-such-kit/configuration").status_code == 404
    assert client.put("/kits/no-such-kit/configuration", {"desired": DESIRED}, format="json").status_code == 404
    assert client.get("/kits/no-such-kit/configuration/history").status_code == 404
    assert client.post("/kits/no-such-kit/commands", COMMAND, format="json").status_code == 404
