"""The kit's MQTT connection: AWSIoTPythonSDK over mutual TLS, client id = thing name."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from AWSIoTPythonSDK.MQTTLib import AWSIoTMQTTClient

from .config import KitConfig

log = logging.getLogger(__name__)

QOS_AT_LEAST_ONCE = 1


class BrokerLink:
    def __init__(self, config: KitConfig, *, keep_alive_seconds: int = 60):
        self.config = config
        self.keep_alive_seconds = keep_alive_seconds
        self._online = threading.Event()
        self._connected_once = False
        client = AWSIoTMQTTClient(config.client_id)
        client.configureEndpoint(config.endpoint, config.port)
        client.configureCredentials(str(config.root_ca), str(config.private_key), str(config.certificate))
        # After a first connection, the SDK reconnects by itself with this backoff (seconds).
        client.configureAutoReconnectBackoffTime(1, 64, 20)
        # The SDK's own offline queue lives in memory and drops messages; our outbox on disk
        # does that job, so a publish while offline fails at once and the message stays there.
        client.configureOfflinePublishQueueing(0)
        client.configureConnectDisconnectTimeout(10)
        client.configureMQTTOperationTimeout(config.publish_timeout_seconds)
        client.onOnline = self._on_online
        client.onOffline = self._on_offline
        self.client = client

    @property
    def online(self) -> bool:
        return self._online.is_set()

    def connect(self) -> bool:
        """Try once to connect; False (and logged) if the broker cannot be reached now."""
        if self._connected_once:
            return self.online  # the SDK is reconnecting by itself
        try:
            self.client.connect(self.keep_alive_seconds)
        except Exception as error:  # the SDK raises several unrelated types for one cause
            log.warning("Cannot connect to %s:%s: %s", self.config.endpoint, self.config.port, error or type(error))
            return False
        self._connected_once = True
        self._online.set()
        log.info("Connected to %s:%s as %s", self.config.endpoint, self.config.port, self.config.client_id)
        return True

    def publish(self, topic: str, payload: str) -> None:
        """Publish with QoS 1 and wait for the broker's acknowledgement; raises if it does not come."""
        if not self.client.publish(topic, payload, QOS_AT_LEAST_ONCE):
            raise ConnectionError("the broker link is down")

    def subscribe(self, topic: str, on_message: Callable[[str, bytes], None]) -> None:
        """Subscribe with QoS 1; raises if the broker does not grant it. `on_message(topic, payload)`
        runs on the SDK's thread. The SDK subscribes again by itself after every reconnect."""
        if not self.client.subscribe(
            topic, QOS_AT_LEAST_ONCE, lambda client, userdata, message: on_message(message.topic, message.payload)
        ):
            raise ConnectionError(f"the broker did not grant the subscription to {topic}")

    def disconnect(self) -> None:
        if self._connected_once:
            try:
                self.client.disconnect()
            except Exception as error:  # already gone: nothing left to close
                log.debug("Disconnect: %s", error)
        self._online.clear()

    def _on_online(self) -> None:
        if not self._online.is_set():
            log.info("Broker link is up")
        self._online.set()

    def _on_offline(self) -> None:
        log.warning("Broker link is down; readings wait in the outbox")
        self._online.clear()
