def test_owner_reads_private_kit_in_seed_shape(make_client, users, private_kit):
    response = make_client(users["owner"]).get("/kits/private-kit")
    assert response.status_code == 200
    assert response.json()["details"] == {
        "id": "private-kit",
        "ip": "192.0.2.10",
        "admin": "owner@example.org",
        "description": "Only members see it.",
    }
