"""The agent's loop: measure every interval, report status at start and every hour, and send
what waits in the outbox, oldest first, whenever the broker is reachable."""

from __future__ import annotations

import logging
import socket
import threading
import time
from pathlib import Path

from . import __version__
from .config import KitConfig
from .link import BrokerLink
from .outbox import Outbox
from .payloads import measurement_payload, status_payload, utc_timestamp
from .sensors import SensorSet

log = logging.getLogger(__name__)

RECONNECT_BACKOFF_MAX_SECONDS = 64.0


class Agent:
    def __init__(self, config: KitConfig, *, link: BrokerLink | None = None, sensors: SensorSet | None = None):
        self.config = config
        self.outbox = Outbox(config.queue_path, max_messages=config.queue_max_messages)
        self.sensors = sensors or SensorSet(config.sensors)
        self.link = link or BrokerLink(config)
        self.stopping = threading.Event()
        self.started = time.monotonic()

    def stop(self) -> None:
        """Ask the loop to end after the message in flight; whatever is unsent stays on disk."""
        self.stopping.set()

    def run(self) -> None:
        log.info(
            "Kit %s starting (agent %s); %d message(s) wait in the outbox",
            self.config.kit_id,
            __version__,
            len(self.outbox),
        )
        now = time.monotonic()
        next_measurement = next_status = now
        next_connect, backoff = now, 1.0
        try:
            while not self.stopping.is_set():
                now = time.monotonic()
                if not self.link.online and now >= next_connect:
                    if self.link.connect():
                        backoff = 1.0
                    else:
                        next_connect, backoff = now + backoff, min(backoff * 2, RECONNECT_BACKOFF_MAX_SECONDS)
                if now >= next_measurement:
                    self.measure()
                    next_measurement = _next_tick(next_measurement, self.config.interval_seconds, now)
                if now >= next_status:
                    self.report_status()
                    next_status = _next_tick(next_status, self.config.status_interval_seconds, now)
                if self.link.online:
                    self.send_waiting()
                wake = min(next_measurement, next_status, next_connect if not self.link.online else next_measurement)
                self.stopping.wait(max(0.05, min(1.0, wake - time.monotonic())))
        finally:
            self.link.disconnect()
            log.info(
                "Kit %s stopped; %d message(s) wait in the outbox for next time", self.config.kit_id, len(self.outbox)
            )
            self.outbox.close()

    def measure(self) -> None:
        readings = self.sensors.read_all()
        if not readings:
            log.warning("No sensor gave a reading this time")
            return
        payload = measurement_payload(
            kit_id=self.config.kit_id,
            sequence=self.outbox.next_sequence(),
            readings=readings,
            timestamp=utc_timestamp(),
        )
        self.outbox.put(self.config.topics["measurements"], payload)

    def report_status(self) -> None:
        payload = status_payload(
            kit_id=self.config.kit_id,
            ip=local_ip_towards(self.config.endpoint, self.config.port),
            software_version=__version__,
            uptime_seconds=system_uptime_seconds() or int(time.monotonic() - self.started),
            timestamp=utc_timestamp(),
        )
        self.outbox.put(self.config.topics["status"], payload)

    def send_waiting(self) -> None:
        """Send queued messages oldest first; stop at the first failure and keep the rest."""
        while not self.stopping.is_set():
            batch = self.outbox.oldest(50)
            if not batch:
                return
            for message in batch:
                try:
                    self.link.publish(message.topic, message.payload)
                except Exception as error:  # timeout or link down: the message stays queued
                    log.warning(
                        "Publishing failed (%s); %d message(s) wait", error or type(error).__name__, len(self.outbox)
                    )
                    return
                self.outbox.remove(message.id)
                if self.stopping.is_set():
                    return


def _next_tick(previous: float, interval: float, now: float) -> float:
    """The next due time on the same grid; ticks missed while busy are skipped, not replayed."""
    ticks = max(1, int((now - previous) // interval) + 1)
    return previous + ticks * interval


def local_ip_towards(host: str, port: int) -> str | None:
    """The address this Pi uses to reach the broker (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return probe.getsockname()[0]
    except OSError:
        return None


def system_uptime_seconds() -> int | None:
    try:
        return int(float(Path("/proc/uptime").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        return None
