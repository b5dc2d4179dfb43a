"""The backend's MQTT connection for what the cloud sends kits (configurations, commands): the
only module of this app that imports paho-mqtt.

The backend connects with a certificate of its own over mutual TLS (AWS IoT Core, or the local
mosquitto), publishes one message with QoS 1 and waits for the broker's PUBACK, so a message is
known to be at the broker before the caller records it as sent. It speaks MQTT 5, whose PUBACK
carries a reason: a publication the broker's policy forbids is told apart from a broker that is
away. One short connection per message: publications are rare (a person's change, a command), and
a Celery worker holds no connection between tasks.
"""

import logging
import secrets
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from django.conf import settings

from .exceptions import BrokerUnavailable, PublishRefused

log = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE = 1


@dataclass(frozen=True)
class PublisherSettings:
    host: str
    port: int
    client_id: str
    certificate: Path
    private_key: Path
    root_ca: Path
    timeout_seconds: float


def publisher_settings() -> PublisherSettings:
    return PublisherSettings(
        host=settings.BACKEND_MQTT_HOST,
        port=settings.BACKEND_MQTT_PORT,
        client_id=settings.BACKEND_MQTT_CLIENT_ID,
        certificate=Path(settings.BACKEND_MQTT_CERTIFICATE_FILE),
        private_key=Path(settings.BACKEND_MQTT_PRIVATE_KEY_FILE),
        root_ca=Path(settings.BACKEND_MQTT_ROOT_CA_FILE),
        timeout_seconds=settings.BACKEND_MQTT_TIMEOUT_SECONDS,
    )


def message_publish(*, topic: str, payload: str, retain: bool, broker: PublisherSettings | None = None) -> None:
    """Publish `payload` on `topic` with QoS 1 and return once the broker has confirmed it.
    BrokerUnavailable if the broker cannot be reached or does not answer in time; PublishRefused
    if it refuses the connection or the message."""
    broker = broker or publisher_settings()
    connected = threading.Event()
    published = threading.Event()
    answers: dict[str, object] = {}

    def on_connect(client, userdata, flags, reason_code, properties):
        answers["connect"] = reason_code
        connected.set()

    def on_publish(client, userdata, mid, reason_code, properties):
        answers[f"publish-{mid}"] = reason_code
        published.set()

    def on_disconnect(client, userdata, flags, reason_code, properties):
        answers.setdefault("disconnect", reason_code)
        connected.set()  # wake a waiter: the link is gone
        published.set()

    # A client id of its own per connection: a broker drops the older of two connections with one
    # id, and several workers may publish at once. (The local mosquitto names every client after
    # its certificate instead, so there two publications at the same instant may meet: the one
    # dropped is retried.)
    client_id = f"{broker.client_id}-{secrets.token_hex(4)}"
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_connect, client.on_publish, client.on_disconnect = on_connect, on_publish, on_disconnect
    try:
        client.tls_set(
            ca_certs=str(broker.root_ca),
            certfile=str(broker.certificate),
            keyfile=str(broker.private_key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    except (OSError, ssl.SSLError) as error:
        raise PublishRefused(f"The backend's MQTT certificate files cannot be used: {error}") from error
    try:
        client.connect(broker.host, broker.port, keepalive=30)
    except (OSError, ssl.SSLError) as error:  # refused, unreachable, timed out, TLS handshake failed
        raise BrokerUnavailable(f"Cannot reach the MQTT broker at {broker.host}:{broker.port}: {error}") from error
    client.loop_start()
    try:
        if not connected.wait(broker.timeout_seconds) or "connect" not in answers:
            raise BrokerUnavailable(f"The MQTT broker at {broker.host}:{broker.port} did not accept us in time.")
        if answers["connect"].is_failure:
            raise PublishRefused(f"The MQTT broker refused the backend's connection: {answers['connect']}.")
        info = client.publish(topic, payload, qos=QOS_AT_LEAST_ONCE, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise BrokerUnavailable(f"Could not send to the MQTT broker: {mqtt.error_string(info.rc)}.")
        key = f"publish-{info.mid}"
        if not published.wait(broker.timeout_seconds) or key not in answers:
            raise BrokerUnavailable(f"The MQTT broker did not confirm the message on {topic} in time.")
        if answers[key].is_failure:
            raise PublishRefused(f"The MQTT broker refused the message on {topic}: {answers[key]}.")
        log.info("Published on %s%s", topic, " (retained)" if retain else "")
    finally:
        client.disconnect()
        client.loop_stop()


def local_credentials_ensure() -> bool:
    """Where the settings allow a local CA (development, tests), issue the backend's certificate
    from it if there is none yet. Returns whether it issued one."""
    from kits.certificates import device_certificate_issue, project_authority

    files = publisher_settings()
    paths = (files.certificate, files.private_key, files.root_ca)
    if not settings.IOT_CA_AUTO_CREATE or all(path.exists() for path in paths):
        return False
    authority = project_authority()
    issued = device_certificate_issue(authority=authority, common_name=files.client_id, valid_days=365)
    texts = (issued.certificate_pem, issued.private_key_pem, authority.certificate_pem)
    for path, text in zip(paths, texts, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_text(text)
    return True
