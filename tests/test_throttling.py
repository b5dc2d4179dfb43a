"""Request rates of the API: per caller and scope, counted where every web worker sees the counts,
answered with 429, the error shape and Retry-After. The test settings set rates no test reaches;
these tests set their own."""

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db

BALANCER = {"REMOTE_ADDR": "10.0.0.2"}  # every request behind the load balancer comes from it


@pytest.fixture
def rates(settings):
    """`rates(anon=..., user=..., data=..., data_csv=...)`: set these scopes' rates (the others
    stay out of reach)."""

    def given(**scopes):
        rates = {"anon": "100000/second", "user": "100000/second", "data": "100000/second", "data_csv": "100000/second"}
        rates.update(scopes)
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}

    return given


def test_a_caller_over_the_rate_gets_429_with_the_error_shape_and_retry_after(make_client, public_kit, rates):
    # Given anonymous callers may make 3 requests a minute
    rates(anon="3/minute")
    anonymous = make_client()
    assert [anonymous.get("/kits").status_code for _ in range(3)] == [200, 200, 200]

    # When one makes a fourth
    response = anonymous.get("/kits/public-kit")

    # Then it is refused, saying how long to wait (the schema-checking client checks the shape)
    assert response.status_code == 429
    assert response.json() == {"detail": f"Too many requests: try again in {response['Retry-After']} seconds."}
    assert 1 <= int(response["Retry-After"]) <= 60


def test_clients_behind_the_same_load_balancer_are_counted_separately(make_client, public_kit, rates, settings):
    # Given the site behind one load balancer, and a client that used up its rate
    settings.TRUSTED_PROXY_COUNT = 1
    rates(anon="2/minute")
    client = make_client()
    for _ in range(2):
        client.get("/kits", HTTP_X_FORWARDED_FOR="203.0.113.1", **BALANCER)
    refused = client.get("/kits", HTTP_X_FORWARDED_FOR="203.0.113.1", **BALANCER)

    # When another client asks through the same balancer
    other = make_client().get("/kits", HTTP_X_FORWARDED_FOR="203.0.113.2", **BALANCER)

    # Then the first is refused and the other is not
    assert refused.status_code == 429
    assert other.status_code == 200


def test_a_forged_forwarded_address_does_not_reset_the_count(make_client, public_kit, rates, settings):
    # Given one trusted proxy, and a client that writes a new address of its own before its real
    # one (which the balancer appends) on every request
    settings.TRUSTED_PROXY_COUNT = 1
    rates(anon="2/minute")
    client = make_client()
    answers = [
        client.get("/kits", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.66", **BALANCER).status_code
        for n in range(3)
    ]

    # Then its third request is refused all the same
    assert answers == [200, 200, 429]


def test_signed_in_callers_are_counted_per_user_not_per_address(make_client, users, public_kit, rates):
    # Given signed-in callers may make 2 requests a minute, from the same address
    rates(user="2/minute")
    owner, viewer = make_client(users["owner"]), make_client(users["viewer"])

    # When one makes three, and then the other one
    answers = [owner.get("/kits").status_code for _ in range(3)]
    other = viewer.get("/kits")

    # Then the first one's third is refused, the other's first is not
    assert answers == [200, 200, 429]
    assert other.status_code == 200


def test_a_kits_data_has_a_stricter_rate_of_its_own(make_client, public_kit, rates):
    # Given a rate for a kit's data stricter than the API's
    rates(anon="100/minute", data="2/minute")
    anonymous = make_client()

    # When a caller asks for the data three times
    answers = [anonymous.get("/kits/public-kit/data").status_code for _ in range(3)]

    # Then the third is refused, while the rest of the API still answers
    assert answers == [200, 200, 429]
    assert anonymous.get("/kits/public-kit").status_code == 200


def test_csv_has_a_stricter_rate_still_and_is_refused_in_json(make_client, public_kit, rates):
    # Given one CSV a minute
    rates(data_csv="1/minute")
    anonymous = make_client()
    assert anonymous.get("/kits/public-kit/data?format=csv").status_code == 200

    # When the caller asks for a second CSV
    response = anonymous.get("/kits/public-kit/data?format=csv")

    # Then it is refused, in JSON, and the same data as JSON is still served
    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert "Too many requests" in response.json()["detail"]
    assert anonymous.get("/kits/public-kit/data").status_code == 200


def test_the_counts_are_kept_in_the_database_every_web_worker_shares(make_client, public_kit, rates):
    # Given the default cache (a table in the database unless CACHE_URL names Redis)
    rates(anon="5/minute")

    # When a caller makes a request
    make_client().get("/kits")

    # Then its count is in that table, not in this process's memory
    with connection.cursor() as cursor:
        cursor.execute("SELECT cache_key FROM astroplant_cache")
        keys = [key for (key,) in cursor.fetchall()]
    assert any("throttle-anon-address-127.0.0.1" in key for key in keys)


def test_on_redis_a_caller_over_the_rate_gets_429_with_retry_after(make_client, public_kit, rates, redis_cache):
    # Given anonymous callers may make 3 requests a minute, counted in Redis
    rates(anon="3/minute")
    anonymous = make_client()
    assert [anonymous.get("/kits").status_code for _ in range(3)] == [200, 200, 200]

    # When one makes a fourth
    response = anonymous.get("/kits/public-kit")

    # Then it is refused, saying how long to wait, and another caller is not
    assert response.status_code == 429
    assert response.json() == {"detail": f"Too many requests: try again in {response['Retry-After']} seconds."}
    assert 1 <= int(response["Retry-After"]) <= 60
    assert make_client().get("/kits", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_on_redis_signed_in_callers_and_scopes_are_counted_apart(make_client, users, public_kit, rates, redis_cache):
    # Given 2 requests a minute for signed-in callers, and 1 a minute for a kit's data
    rates(user="2/minute", data="1/minute")
    owner, viewer = make_client(users["owner"]), make_client(users["viewer"])

    # When the owner asks for the data twice, then for the kit
    answers = [owner.get("/kits/public-kit/data").status_code for _ in range(2)] + [owner.get("/kits").status_code]

    # Then the data's second is refused by its own rate, the third by the user's; the viewer is not
    assert answers == [200, 429, 429]
    assert viewer.get("/kits").status_code == 200
