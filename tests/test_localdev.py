import boto3


def test_moto_server_answers_boto3(moto_server):
    client = boto3.client("dynamodb")
    assert client.meta.endpoint_url == moto_server.url
    assert client.list_tables()["TableNames"] == []


BUNDLE_KIT_TOML = """\
schema_version = 1

[kit]
id = "demo-kit-1"
thing_name = "astroplant-demo-kit-1"

[mqtt]
endpoint = "localhost"
port = 8883
certificate = "certificate.pem.crt"
private_key = "private.pem.key"
root_ca = "root-ca.pem"

[topics]
measurements = "astroplant/kits/astroplant-demo-kit-1/measurements"
status = "astroplant/kits/astroplant-demo-kit-1/status"

[[sensors]]
key = "temperature"
quantity = "temperature"
unit = "°C"
"""


def test_a_simulated_kit_gets_a_led_panel_and_a_fan_with_rules_the_agent_takes(tmp_path):
    from device.config import load_config
    from localdev.simulated_kit import demo_kit_toml

    (tmp_path / "kit.toml").write_text(demo_kit_toml(BUNDLE_KIT_TOML, interval_seconds=5.0))

    config = load_config(tmp_path / "kit.toml")

    assert config.interval_seconds == 5.0
    assert [(a.key, a.kind, a.dimmable, a.driver) for a in config.actuators] == [
        ("led", "light", True, "simulated"),
        ("fan", "fan", False, "simulated"),
    ]
    rules = config.desired_local()["actuators"]
    assert rules["led"]["mode"] == "schedule" and rules["led"]["periods"][0]["level"] == 80
    assert rules["fan"]["mode"] == "thermostat" and rules["fan"]["sensor"] == "temperature"
