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
