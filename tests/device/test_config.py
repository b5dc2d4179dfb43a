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


def test_actuators_and_the_time_zone_load_with_their_defaults(actuated_kit_toml):
    actuated_kit_toml.write_text(
        actuated_kit_toml.read_text(encoding="utf-8").replace("[kit]\n", '[kit]\ntime_zone = "Europe/Amsterdam"\n'),
        encoding="utf-8",
    )

    config = load_config(actuated_kit_toml)

    assert config.time_zone == "Europe/Amsterdam"
    led, fan, heater = config.actuators
    assert (led.key, led.kind, led.dimmable, led.driver) == ("led", "light", True, "simulated")
    assert (fan.kind, fan.dimmable, fan.driver, fan.rule) == ("fan", False, "simulated", None)
    assert (heater.driver, heater.options) == ("gpio_relay", {"pin": 17})
    assert config.applied_configuration_path == actuated_kit_toml.parent / "applied-configuration.json"
    # A bundle older than the two-way topics still gets them, by the same naming rule
    assert config.topics["commands"] == "astroplant/kits/astroplant-k-7f3a-c21e/commands"
    assert config.topics["command-results"] == "astroplant/kits/astroplant-k-7f3a-c21e/command-results"


def test_without_actuators_or_a_time_zone_the_kit_runs_on_utc(kit_toml):
    config = load_config(kit_toml)

    assert config.actuators == []
    assert config.time_zone == "UTC"
    assert config.desired_local()["actuators"] == {}


def test_a_rule_in_kit_toml_is_the_kits_own_default(actuated_kit_toml):
    text = actuated_kit_toml.read_text(encoding="utf-8")
    actuated_kit_toml.write_text(
        text.replace(
            'kind = "fan"\n',
            'kind = "fan"\nrule = {mode = "thermostat", sensor = "temperature", on_above = 26.0, off_below = 25.0}\n',
        ),
        encoding="utf-8",
    )

    desired = load_config(actuated_kit_toml).desired_local()

    assert desired["actuators"]["fan"] == {
        "mode": "thermostat",
        "sensor": "temperature",
        "on_above": 26.0,
        "off_below": 25.0,
        "level": 100,
    }
    assert desired["actuators"]["led"] == {"mode": "off"}
    assert desired["interval_seconds"] == 0.2  # kit.toml's own, not bound by the cloud's minimum


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda text: text.replace('kind = "fan"', 'kind = "fridge"'), "kind must be one of light, fan"),
        (lambda text: text.replace("dimmable = true", 'dimmable = "yes"'), "dimmable must be true or false"),
        (lambda text: text.replace('driver = "gpio_relay"', 'driver = "x10"'), "driver must be one of simulated"),
        (lambda text: text.replace('key = "fan"', 'key = "led"'), "actuator 'led' is listed twice"),
        (lambda text: text.replace('key = "fan"', 'key = "light"'), "a sensor has this key too"),
        (lambda text: text.replace('key = "fan"', 'key = "Big Fan"'), "needs a 'key' of lower-case letters"),
        (lambda text: text.replace("options = {pin = 17}", "options = 17"), "options must be a table"),
        (lambda text: text.replace('kind = "fan"', 'kind = "fan"\nspeed = 3'), "unknown field(s) speed"),
        (
            lambda text: text.replace("[kit]\n", '[kit]\ntime_zone = "Mars/Olympus"\n'),
            "'Mars/Olympus' is not a time zone",
        ),
        (
            lambda text: text.replace('kind = "fan"', 'kind = "fan"\nrule = {mode = "on", level = 40}'),
            "actuators.fan.level: This actuator is on/off",
        ),
    ],
)
def test_a_broken_actuator_entry_says_what_is_wrong(actuated_kit_toml, edit, message):
    actuated_kit_toml.write_text(edit(actuated_kit_toml.read_text(encoding="utf-8")), encoding="utf-8")

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_config(actuated_kit_toml)
