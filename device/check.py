"""`python -m device check`: is this kit ready? Checks the certificate, the connection, the
sensors and the actuators' drivers, and says in plain words what is wrong and what to do."""

from __future__ import annotations

import socket
import ssl
from datetime import datetime, timezone
from typing import Callable

from .actuators import ActuatorSet
from .config import KitConfig
from .link import BrokerLink
from .sensors import SensorSet

Result = tuple[bool, str]


def check_files(config: KitConfig) -> list[Result]:
    results = []
    for label, path in (
        ("certificate", config.certificate),
        ("private key", config.private_key),
        ("root CA", config.root_ca),
    ):
        if path.is_file():
            results.append((True, f"The {label} file is there: {path}"))
        else:
            results.append((False, f"The {label} file is missing: {path}. Unpack the kit's bundle next to kit.toml."))
    if not all(ok for ok, _ in results):
        return results
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    try:
        context.load_cert_chain(str(config.certificate), str(config.private_key))
        results.append((True, "The private key belongs to the certificate."))
    except ssl.SSLError:
        results.append((False, "The private key does not belong to the certificate: use the two files of one bundle."))
    try:
        context.load_verify_locations(str(config.root_ca))
        results.append((True, "The root CA certificate can be read."))
    except ssl.SSLError:
        results.append((False, f"{config.root_ca} is not a PEM certificate: download the bundle again."))
    expiry = _certificate_expiry(config)
    if expiry is not None:
        if expiry < datetime.now(timezone.utc):
            results.append((False, f"The certificate expired on {expiry:%Y-%m-%d}: ask an admin to rotate it."))
        else:
            results.append((True, f"The certificate is valid until {expiry:%Y-%m-%d}."))
    return results


def check_connection(config: KitConfig) -> list[Result]:
    where = f"{config.endpoint}:{config.port}"
    try:
        raw = socket.create_connection((config.endpoint, config.port), timeout=10)
    except socket.gaierror:
        return [(False, f"The broker's name {config.endpoint} cannot be resolved: is the network (DNS) up?")]
    except OSError as error:
        return [
            (False, f"Nothing answers at {where} ({error.strerror or error}): is the network up, is the port open?")
        ]
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(config.root_ca))
    context.load_cert_chain(str(config.certificate), str(config.private_key))
    try:
        with context.wrap_socket(raw, server_hostname=config.endpoint) as tls:
            tls.do_handshake()
    except ssl.SSLCertVerificationError as error:
        return [(False, f"The broker at {where} is not the one this bundle trusts ({error.verify_message}).")]
    except (ssl.SSLError, OSError) as error:
        return [(False, f"The broker at {where} refused this kit's certificate ({error}): it may be deactivated.")]
    results = [(True, f"The broker at {where} accepts this kit's certificate.")]
    link = BrokerLink(config)
    if link.connect():
        results.append((True, f"Connected over MQTT as {config.client_id}."))
        link.disconnect()
    else:
        results.append((False, f"The broker refused an MQTT session as {config.client_id}: is the thing name right?"))
    return results


def check_sensors(config: KitConfig) -> list[Result]:
    sensors = SensorSet(config.sensors)
    readings = sensors.read_all()
    results = [(True, f"Sensor {key} reads {value} {_unit(config, key)}") for key, value in readings.items()]
    results += [(False, f"Sensor {key} {problem}") for key, problem in sensors.failures.items()]
    return results


def check_actuators(config: KitConfig) -> list[Result]:
    """Whether each actuator's driver can be set up. Nothing is switched: a check must not start
    a pump or a heater."""
    if not config.actuators:
        return [(True, "The kit lists no [[actuators]].")]
    actuators = ActuatorSet(config.actuators)
    results = []
    for actuator in config.actuators:
        kind = f"{actuator.kind}, {'dimmable' if actuator.dimmable else 'on/off'}"
        if actuators.working(actuator.key):
            results.append((True, f"Actuator {actuator.key} ({kind}) has a working {actuator.driver} driver"))
        else:
            results.append((False, f"Actuator {actuator.key} ({kind}): {actuators.failures[actuator.key]}"))
    for driver in actuators.drivers.values():
        driver.close()
    return results


def run_checks(config: KitConfig, *, say: Callable[[str], None] = print) -> bool:
    everything_ok = True
    checks = (
        ("Certificate", check_files),
        ("Connection", check_connection),
        ("Sensors", check_sensors),
        ("Actuators", check_actuators),
    )
    for title, check in checks:
        say(f"{title}:")
        results = check(config)
        for ok, message in results:
            say(f"  {'ok  ' if ok else 'FAIL'} {message}")
        everything_ok = everything_ok and all(ok for ok, _ in results)
        if title == "Certificate" and not everything_ok:
            say("Connection: skipped until the certificate files are right.")
            for later_title, later_check in (("Sensors", check_sensors), ("Actuators", check_actuators)):
                say(f"{later_title}:")
                for ok, message in later_check(config):
                    say(f"  {'ok  ' if ok else 'FAIL'} {message}")
            return False
    say("Everything is ready." if everything_ok else "Some checks failed: see FAIL above.")
    return everything_ok


def _unit(config: KitConfig, key: str) -> str:
    return next((sensor.unit for sensor in config.sensors if sensor.key == key), "")


def _certificate_expiry(config: KitConfig):
    try:
        # CPython's own PEM decoder, the one the ssl module uses; no extra dependency on the Pi.
        decoded = ssl._ssl._test_decode_cert(str(config.certificate))  # noqa: SLF001
        return datetime.strptime(decoded["notAfter"], "%b %d %H:%M:%S %Y %Z").replace(tzinfo=timezone.utc)
    except (AttributeError, KeyError, ValueError, ssl.SSLError):
        return None
