"""The ingest bridge: kit messages from the broker into DynamoDB (`manage.py ingest`).

Each round takes what the broker delivered (up to a batch), checks every message against the
MQTT contract and DynamoDB's limits, stores the readings in one `readings_write` call, keeps
refused messages as dead letters, records what kits report back to the cloud (a configuration
applied or rejected, a command's result: control/services.py), moves the kits' last-seen times
forward, and only then acknowledges the messages. One thread checks the next batch while another stores the one
before, in order; a third brings rollups up to date a few minutes behind (`rollups_refresh`).

Failures are of two kinds. Transient (DynamoDB or the database away, throttling): the batch is
retried with backoff and nothing is acknowledged, so no reading is lost. Permanent for one
message (it can never be stored as it is, whatever DynamoDB's reason): that message alone is
dead-lettered with the reason and acknowledged, and the rest of its batch is stored as usual.
So no kit can stall the others. A message delivered twice changes nothing (writes are idempotent).

Several bridges share the kits' messages through an MQTT shared subscription
(INGEST_SHARE_GROUP); each needs its own client id.
"""

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections
from django.utils import timezone

from control import services as control_services
from control.exceptions import ReportRefused
from kits import presence
from kits import selectors as kit_selectors
from kits.iot_policy import TOPIC_ROOT

from . import dynamodb, services
from .exceptions import ReadingsNotStored, TelemetryUnavailable
from .messages import CommandResult, InvalidMessage, Measurement, Status, message_parse, topic_parse
from .mqtt_subscriber import BrokerSettings, ReceivedMessage, Subscriber

log = logging.getLogger(__name__)

TOPICS = (f"{TOPIC_ROOT}/+/measurements", f"{TOPIC_ROOT}/+/status", f"{TOPIC_ROOT}/+/command-results")
RETRY_BACKOFF_MAX_SECONDS = 30.0
ROLLUP_REFRESH_EVERY_SECONDS = 5.0


class BridgeStopping(Exception):
    """The bridge was asked to stop while waiting for DynamoDB or the database to come back."""


@dataclass
class IngestCounts:
    """What the bridge has done since it started; logged every so often."""

    messages: int = 0
    readings_stored: int = 0
    statuses: int = 0
    dead_letters: int = 0
    rollup_hours: int = 0  # hourly buckets brought up to date
    reports: int = 0  # configuration reports and command results recorded

    def line(self) -> str:
        return (
            f"{self.messages} messages: {self.readings_stored} readings stored, {self.statuses} statuses, "
            f"{self.dead_letters} dead letters, {self.rollup_hours} rollup hours, {self.reports} reports, "
            f"{dynamodb.write_units_spent()} write units"
        )


@dataclass
class CheckedBatch:
    """A batch of messages as taken off the broker, sorted and ready to store."""

    messages: list[ReceivedMessage]
    received_at: datetime
    readings: list[services.Reading]
    refused: list[services.RefusedMessage]
    sightings: list[presence.KitSighting]
    # What kits report to the cloud (a status's configuration report, a command's result), each
    # with its message, to dead-letter it if the control app refuses it.
    reports: list[tuple[ReceivedMessage, Status | CommandResult]]
    # Which messages each reading came from, by (kit id, timestamp): to dead-letter the very
    # message(s) whose reading DynamoDB refuses.
    sources: dict[tuple[str, datetime], list[ReceivedMessage]]


def subscription_topics() -> tuple[str, ...]:
    """The topics the bridge subscribes to: in the shared subscription of INGEST_SHARE_GROUP, if
    one is set, so that the bridges in it split the kits' messages between them."""
    group = settings.INGEST_SHARE_GROUP
    return tuple(f"$share/{group}/{topic}" for topic in TOPICS) if group else TOPICS


def broker_settings() -> BrokerSettings:
    return BrokerSettings(
        host=settings.INGEST_MQTT_HOST,
        port=settings.INGEST_MQTT_PORT,
        client_id=settings.INGEST_CLIENT_ID,
        certificate=Path(settings.INGEST_CERTIFICATE_FILE),
        private_key=Path(settings.INGEST_PRIVATE_KEY_FILE),
        root_ca=Path(settings.INGEST_ROOT_CA_FILE),
        topics=subscription_topics(),
        # The other form is dropped on connect: a persistent session may still hold it from
        # before the group was set (or unset), and would deliver every message twice.
        topics_not_wanted=TOPICS if settings.INGEST_SHARE_GROUP else (),
    )


class IngestBridge:
    def __init__(self, subscriber: Subscriber, *, batch_size: int = 2000, batch_wait_seconds: float = 0.2):
        self.subscriber = subscriber
        self.batch_size = batch_size
        self.batch_wait_seconds = batch_wait_seconds
        self.counts = IngestCounts()
        self.stopping = threading.Event()
        self._report_lock = threading.Lock()
        self._report_every = 60.0
        self._next_report = 0.0

    def stop(self) -> None:
        self.stopping.set()

    def run(self, *, report_every_seconds: float = 60.0) -> None:
        """Ingest until stopped, in two threads: this one takes each batch off the broker and
        checks it, while a storer thread stores and acknowledges the batch before it. So the
        next batch is ready when DynamoDB is done with one, and batches are stored in order."""
        self.subscriber.start()
        checked_batches: queue.Queue[CheckedBatch | None] = queue.Queue(maxsize=1)
        storer = threading.Thread(target=self._store_loop, args=(checked_batches,), name="ingest-store")
        refresher = threading.Thread(target=self._rollups_loop, name="ingest-rollups")
        self._report_every = report_every_seconds
        self._next_report = time.monotonic() + report_every_seconds
        storer.start()
        refresher.start()
        try:
            while not self.stopping.is_set():
                batch = self._take_batch()
                if batch:
                    try:
                        checked = self._check(batch)
                    except BridgeStopping:
                        break
                    self._hand_over(checked_batches, checked, storer)
                self._report_if_due()  # also while idle: a line says the bridge is alive
        finally:
            if storer.is_alive():
                checked_batches.put(None)  # the storer finishes what it was given, then ends
                storer.join()
            self.stopping.set()
            refresher.join()
            self.subscriber.stop()
            connections.close_all()  # this thread's database connection ends with it
            log.info("Ingest stopped: %s", self.counts.line())

    def _store_loop(self, checked_batches: queue.Queue[CheckedBatch | None]) -> None:
        try:
            while (checked := checked_batches.get()) is not None:
                self._store_and_ack(checked)
                self._report_if_due()  # right after a batch is stored, so the counts are news
        finally:
            connections.close_all()  # the storer's own database connection

    def _rollups_loop(self) -> None:
        """Brings rollups up to date as their marks fall due, whichever bridge stored the
        readings (marks are in the database, so a bridge that died leaves none behind)."""
        failures = 0
        try:
            while not self.stopping.is_set():
                close_old_connections()
                try:
                    summary = services.rollups_refresh()
                except (TelemetryUnavailable, DatabaseError) as error:
                    failures += 1
                    log.warning("Cannot refresh rollups now (%s)", error)
                    self.stopping.wait(self._pause(failures))
                    continue
                except Exception:  # a bug: keep the evidence, keep ingesting
                    failures += 1
                    log.exception("Unexpected error refreshing rollups")
                    self.stopping.wait(self._pause(failures))
                    continue
                failures = 0
                self.counts.rollup_hours += summary.hours
                if summary.hours + summary.days + summary.failed == 0:
                    self.stopping.wait(ROLLUP_REFRESH_EVERY_SECONDS)
        finally:
            connections.close_all()

    def _report_if_due(self) -> None:
        with self._report_lock:
            if time.monotonic() >= self._next_report:
                log.info("Ingest: %s", self.counts.line())
                self._next_report = time.monotonic() + self._report_every

    @staticmethod
    def _hand_over(checked_batches, checked: CheckedBatch, storer: threading.Thread) -> None:
        while storer.is_alive():
            try:
                checked_batches.put(checked, timeout=0.5)
                return
            except queue.Full:
                continue
        raise RuntimeError("The ingest storer thread has died; see the error above")

    def _check(self, batch: list[ReceivedMessage]) -> CheckedBatch:
        """Sort a batch into readings to store, refused messages and kit sightings. Raises
        BridgeStopping if asked to stop while the database is away."""
        close_old_connections()  # a long-running process must not keep a dead database connection
        now = timezone.now()
        readings, refused, sightings, reports, sources = self._sort(batch, now)
        return CheckedBatch(batch, now, readings, refused, sightings, reports, sources)

    def _store_and_ack(self, checked: CheckedBatch) -> bool:
        """Store one checked batch and acknowledge it. False if asked to stop first: then
        nothing of the batch is acknowledged, and the broker delivers it again to the next bridge."""
        close_old_connections()
        try:
            self._until_done(lambda: self._store(checked))
        except BridgeStopping:
            return False
        for message in checked.messages:
            self.subscriber.ack(message)
        self.counts.messages += len(checked.messages)
        return True

    def _take_batch(self) -> list[ReceivedMessage]:
        inbox = self.subscriber.inbox
        try:
            batch = [inbox.get(timeout=0.5)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self.batch_wait_seconds
        while len(batch) < self.batch_size:
            try:
                batch.append(inbox.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _sort(self, batch, now):
        """Readings to store, messages refused with their reason, who was heard from, and what
        kits report to the cloud."""
        parsed, refused = [], []
        for message in batch:
            try:
                parsed.append(
                    (
                        message,
                        message_parse(
                            topic=message.topic,
                            payload=message.payload,
                            now=now,
                            max_age=timedelta(days=settings.INGEST_MAX_AGE_DAYS),
                            max_ahead=timedelta(seconds=settings.TELEMETRY_MAX_FUTURE_SECONDS),
                        ),
                    )
                )
            except InvalidMessage as error:
                refused.append(self._refusal(message, error.reason))
            except Exception as error:  # a message our checks did not foresee: it alone is refused
                log.exception("Unexpected error checking a message on %s", message.topic)
                refused.append(self._refusal(message, f"The message could not be checked ({error!r})."))
        known = self._until_done(
            lambda: kit_selectors.kit_ids_receiving_telemetry(kit_ids={p.kit_id for _, p in parsed})
        )
        readings, sightings, reports = [], [], []
        sources: dict[tuple[str, datetime], list[ReceivedMessage]] = {}
        for message, content in parsed:
            if content.kit_id not in known:
                refused.append(self._refusal(message, f"No kit '{content.kit_id}' is registered to send readings."))
                continue
            if isinstance(content, Measurement):
                reading = services.Reading(kit_id=content.kit_id, timestamp=content.timestamp, values=content.values)
                problem = services.reading_problem(reading)
                if problem:
                    refused.append(self._refusal(message, problem))
                    continue
                readings.append(reading)
                sources.setdefault((reading.kit_id, reading.timestamp), []).append(message)
                sightings.append(presence.KitSighting(content.kit_id, content.timestamp))
            elif isinstance(content, CommandResult):
                reports.append((message, content))
                sightings.append(presence.KitSighting(content.kit_id, content.timestamp))
            else:
                self.counts.statuses += 1
                sightings.append(presence.KitSighting(content.kit_id, content.timestamp, content.ip))
                if content.config_report is not None:
                    reports.append((message, content))
        return readings, refused, sightings, reports, sources

    def _refusal(self, message: ReceivedMessage, reason: str) -> services.RefusedMessage:
        try:
            kit_id, _ = topic_parse(message.topic)
        except InvalidMessage:
            kit_id = ""
        log.warning("Dead letter on %s: %s", message.topic, reason)
        return services.RefusedMessage(topic=message.topic, payload=message.payload, reason=reason, kit_id=kit_id)

    def _store(self, checked: CheckedBatch) -> None:
        """Stores a checked batch; safe to call again after it raised (each step is idempotent,
        and what is done is not done twice)."""
        if checked.readings:
            try:
                summary = services.readings_write(readings=checked.readings)
                stored = summary.stored
            except ReadingsNotStored as error:
                stored = error.stored
                self._refuse_permanently_failed(checked, error)
                if any(not failure.permanent for failure in error.failed):
                    # The rest is stored; these are retried (idempotently) with the whole batch.
                    raise TelemetryUnavailable(error.message) from error
            self.counts.readings_stored += stored
            checked.readings.clear()  # stored: a retry of a later step need not write them again
        if checked.reports:
            self._record_reports(checked)
        if checked.refused:
            self.counts.dead_letters += services.dead_letters_record(
                refused=checked.refused, received_at=checked.received_at
            )
            checked.refused.clear()
        if checked.sightings:
            presence.kits_seen_record(sightings=checked.sightings)
            checked.sightings.clear()

    def _record_reports(self, checked: CheckedBatch) -> None:
        """Records each report through the control app, in order, each once (a retry after the
        database failed goes on with the next); a report it refuses (a command of another kit, a
        configuration version never sent) becomes a dead letter."""
        while checked.reports:
            message, content = checked.reports[0]
            try:
                if isinstance(content, CommandResult):
                    control_services.command_result_record(
                        kit_id=content.kit_id,
                        command_id=content.command_id,
                        status=content.status,
                        result=content.result,
                        reason=content.reason,
                        answered_at=content.timestamp,
                    )
                else:
                    report = content.config_report
                    control_services.configuration_reported(
                        kit_id=content.kit_id,
                        version=report.version,
                        status=report.status,
                        reason=report.reason,
                        reported_at=content.timestamp,
                    )
                self.counts.reports += 1
            except ReportRefused as error:
                checked.refused.append(self._refusal(message, error.message))
            checked.reports.pop(0)

    def _refuse_permanently_failed(self, checked: CheckedBatch, error: ReadingsNotStored) -> None:
        """Moves the readings DynamoDB refused for good to the dead letters, each with its
        message(s) and DynamoDB's reason; they are not written again."""
        refused_keys = set()
        for failure in error.failed:
            if failure.permanent:
                key = (failure.reading.kit_id, failure.reading.timestamp)
                refused_keys.add(key)
                for message in checked.sources.get(key, []):
                    checked.refused.append(self._refusal(message, failure.reason))
        if refused_keys:
            checked.readings[:] = [r for r in checked.readings if (r.kit_id, r.timestamp) not in refused_keys]

    def _until_done(self, step):
        """Run `step` until it succeeds, backing off while DynamoDB or the database is away.
        Returns its result; raises BridgeStopping if the bridge is asked to stop first.

        An unexpected error is retried too, loudly: the batch stays unacknowledged (so nothing
        is lost) and the bridge stays up for the other kits, rather than crash-looping."""
        attempt = 0
        while True:
            try:
                return step()
            except (TelemetryUnavailable, DatabaseError) as error:
                log.warning("Cannot store now (%s); trying again in %.1f s", error, pause := self._pause(attempt))
                cause = error
            except Exception as error:  # a bug or an unforeseen failure: keep the evidence
                log.exception("Unexpected error storing a batch; trying again in %.1f s", pause := self._pause(attempt))
                cause = error
            attempt += 1
            close_old_connections()
            if self.stopping.wait(pause):
                raise BridgeStopping from cause

    @staticmethod
    def _pause(attempt: int) -> float:
        return min(RETRY_BACKOFF_MAX_SECONDS, 0.5 * 2 ** (attempt + 1)) * random.uniform(0.5, 1.0)  # noqa: S311


def local_credentials_ensure() -> bool:
    """Where the settings allow a local CA (development, tests), issue the bridge's certificate
    from it if there is none yet. Returns whether it issued one."""
    from kits.certificates import device_certificate_issue, project_authority

    files = broker_settings()
    if not settings.IOT_CA_AUTO_CREATE or all(
        p.exists() for p in (files.certificate, files.private_key, files.root_ca)
    ):
        return False
    authority = project_authority()
    issued = device_certificate_issue(authority=authority, common_name=settings.INGEST_CLIENT_ID, valid_days=365)
    for path, text in (
        (files.certificate, issued.certificate_pem),
        (files.private_key, issued.private_key_pem),
        (files.root_ca, authority.certificate_pem),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.touch(mode=0o600)
        path.write_text(text)
    return True
