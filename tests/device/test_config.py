import pytest

from device.config import ConfigError, load_config


def test_a_bundle_config_loads_with_paths_beside_the_file(kit_toml):
    config = load_config(kit_toml)

    assert config.kit_id == "k-7f3a-c21e"
    assert config.client_id == config.thing_name == "astroplant-k-7f3a-c21e"
    assert config.certificate == kit_toml.parent / "certificate.pem.crt"
    assert config.topics["measurements"].endswith("/astroplant-k-7f3a-c21e/measurements")
    assert [sensor.key for sensor in config.sensors] == ["temperature", "light"]
    assert config.sensors[0].driver == "simulated"
    assert config.interval_seconds == 0.2
    assert config.status_interval_seconds == 3600


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace("schema_version = 1", "schema_version = 9"), "schema_version 9"),
        (lambda text: text.replace('thing_name = "astroplant-k-7f3a-c21e"\n', ""), "[kit] needs 'thing_name'"),
        (lambda text: text.replace("[[sensors]]", "[[nothing]]"), "no [[sensors]]"),
        (lambda text: text.replace("measurements = ", "m = "), "no 'measurements' topic"),
        (lambda text: text + "\n[broken", "not valid TOML"),
    ],
)
def test_a_broken_config_says_what_is_wrong(kit_toml, edit, message):
    kit_toml.write_text(edit(kit_toml.read_text(encoding="utf-8")), encoding="utf-8")

    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config(kit_toml)


def test_a_missing_config_says_where_it_looked(tmp_path):
    with pytest.raises(ConfigError, match="no configuration file at"):
        load_config(tmp_path / "kit.toml")
