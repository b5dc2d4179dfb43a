"""Fixtures of the control tests: the shared kits given actuators, and the backend's identity on
the test broker."""

import pytest

from kits.models import Actuator


@pytest.fixture
def actuated_kits(private_kit, public_kit):
    """private_kit and public_kit (conftest.py), each with a dimmable LED panel and an on/off fan."""
    for kit in (private_kit, public_kit):
        Actuator.objects.create(kit=kit, key="led", kind="light", dimmable=True)
        Actuator.objects.create(kit=kit, key="fan", kind="fan", dimmable=False)
    return {"private": private_kit, "public": public_kit}


@pytest.fixture
def backend_on_broker(settings, mosquitto_broker):
    """The backend publishes to the test's mosquitto as `astroplant.backend`, with a certificate
    the project CA issued."""
    from localdev.mosquitto import BACKEND_CLIENT

    credentials = mosquitto_broker.client_credentials(BACKEND_CLIENT)
    settings.BACKEND_MQTT_HOST = "localhost"
    settings.BACKEND_MQTT_PORT = mosquitto_broker.port
    settings.BACKEND_MQTT_CLIENT_ID = BACKEND_CLIENT
    settings.BACKEND_MQTT_CERTIFICATE_FILE = str(credentials.certificate)
    settings.BACKEND_MQTT_PRIVATE_KEY_FILE = str(credentials.private_key)
    settings.BACKEND_MQTT_ROOT_CA_FILE = str(credentials.root_ca)
    return mosquitto_broker
