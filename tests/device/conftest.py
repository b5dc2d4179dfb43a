import pytest

KIT_TOML = """\
schema_version = 1

[kit]
id = "k-7f3a-c21e"
thing_name = "astroplant-k-7f3a-c21e"

[mqtt]
endpoint = "127.0.0.1"
port = {port}
client_id = "astroplant-k-7f3a-c21e"
certificate = "certificate.pem.crt"
private_key = "private.pem.key"
root_ca = "root-ca.pem"

[topics]
measurements = "astroplant/kits/astroplant-k-7f3a-c21e/measurements"
status = "astroplant/kits/astroplant-k-7f3a-c21e/status"
config = "astroplant/kits/astroplant-k-7f3a-c21e/config"

[[sensors]]
key = "temperature"
quantity = "temperature"
unit = "°C"
min_value = -10.0
max_value = 50.0

[[sensors]]
key = "light"
quantity = "light"
unit = "lux"

[agent]
interval_seconds = 0.2
"""


@pytest.fixture
def kit_toml(tmp_path):
    """A kit.toml as the backend's bundle writes it, in a folder of its own."""
    path = tmp_path / "bundle" / "kit.toml"
    path.parent.mkdir()
    path.write_text(KIT_TOML.format(port=8883), encoding="utf-8")
    return path


ACTUATORS_TOML = """
[[actuators]]
key = "led"
kind = "light"
dimmable = true

[[actuators]]
key = "fan"
kind = "fan"

[[actuators]]
key = "heater"
kind = "heater"
driver = "gpio_relay"
options = {pin = 17}
"""


@pytest.fixture
def actuated_kit_toml(kit_toml):
    """kit_toml with a dimmable LED panel and a fan (simulated), and a heater on a GPIO relay,
    whose driver cannot work here (no gpiozero, no Raspberry Pi); with certificate files beside
    it, so that the agent can be built (it never connects to anything here)."""
    from kits.certificates import authority_create, device_certificate_issue

    kit_toml.write_text(kit_toml.read_text(encoding="utf-8") + ACTUATORS_TOML, encoding="utf-8")
    authority = authority_create()
    issued = device_certificate_issue(authority=authority, common_name="astroplant-k-7f3a-c21e", valid_days=1)
    (kit_toml.parent / "certificate.pem.crt").write_text(issued.certificate_pem)
    (kit_toml.parent / "private.pem.key").write_text(issued.private_key_pem)
    (kit_toml.parent / "root-ca.pem").write_text(authority.certificate_pem)
    return kit_toml
