"""The ingest bridge's MQTT connection: the only module that imports paho-mqtt.

It connects with its own certificate over mutual TLS (AWS IoT Core, or the local mosquitto),
keeps a persistent session (messages wait at the broker while the bridge is away), and hands
every message to the caller without acknowledging it: `ack()` is called only once the message's
readings are stored, so a crash before that gets the message delivered again.
"""

import logging
import queue
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt

log = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE = 1


@dataclass(frozen=True)
class BrokerSettings:
    host: str
    port: int
    client_id: str
    certificate: Path
    private_key: Path
    root_ca: Path
    topics: tuple[str, ...]
    topics_not_wanted: tuple[str, ...] = ()  # dropped from a persistent session on connect
    keep_alive_seconds: int = 30


@dataclass(frozen=True)
class ReceivedMessage:
    topic: str
    payload: bytes
    mid: int
    qos: int
    # Which connection delivered it. A packet id means something only on its connection: once
    # the link drops, the broker may give the same id to another message.
    connection: int = 0


class Subscriber:
    def __init__(self, settings: BrokerSettings):
        self.settings = settings
        self.inbox: queue.Queue[ReceivedMessage] = queue.Queue()
        self.connected = False
        self.subscribed = False  # the broker has confirmed our subscriptions on this connection
        self.stopping = False
        self.connection = 0  # grows whenever the link drops or comes back
        self.acks_skipped = 0  # acknowledgements not sent: their connection had gone
        self._connection_lock = threading.Lock()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=settings.client_id,
            clean_session=False,  # the broker keeps our subscriptions and queues while we are away
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        client.tls_set(
            ca_certs=str(settings.root_ca),
            certfile=str(settings.certificate),
            keyfile=str(settings.private_key),
            cert_reqs=ssl.CERT_REQUIRED,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.client = client

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself whenever the link drops."""
        self.client.connect_async(self.settings.host, self.settings.port, keepalive=self.settings.keep_alive_seconds)
        self.client.loop_start()

    def stop(self) -> None:
        self.stopping = True
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, message: ReceivedMessage) -> None:
        """Tell the broker this message is handled, if the connection that delivered it is still
        the one we have. Otherwise the acknowledgement is not sent: its packet id may by now name
        another message, not yet stored. The broker sends the message again on the new
        connection (a persistent session keeps it), which is harmless: storing it twice keeps one."""
        if message.qos == 0:
            return
        with self._connection_lock:
            if message.connection != self.connection or not self.connected:
                self.acks_skipped += 1
                return
            self.client.ack(message.mid, message.qos)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("The broker refused the ingest bridge: %s", reason_code)
            return
        with self._connection_lock:
            self.connection += 1
            self.connected = True
            self.subscribed = False
        if self.settings.topics_not_wanted:
            client.unsubscribe(list(self.settings.topics_not_wanted))
        # Subscribe on every connect: a broker that restarted without our session forgot them.
        client.subscribe([(topic, QOS_AT_LEAST_ONCE) for topic in self.settings.topics])
        log.info("Connected to %s:%s; subscribing", self.settings.host, self.settings.port)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.stopping:
            log.info("Disconnected from the broker")
        elif self.connected:
            log.warning("Lost the broker (%s); reconnecting", reason_code)
        with self._connection_lock:
            self.connection += 1
            self.connected = False
            self.subscribed = False

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [code for code in reason_codes if code.is_failure]
        if failed:
            log.error("The broker refused a subscription of the ingest bridge: %s", failed)
            return
        self.subscribed = True
        # Said once the broker has confirmed: from here on, no message for us is missed.
        log.info("The broker confirmed: subscribed to %s", ", ".join(self.settings.topics))

    def _on_message(self, client, userdata, message) -> None:
        self.inbox.put(
            ReceivedMessage(message.topic, bytes(message.payload), message.mid, message.qos, self.connection)
        )
