"""Celery tasks of the control app: thin, named, given ids, each calling one service.

Publishing to the kits' broker: a broker that is away (BrokerUnavailable) is retried by Celery
itself (`autoretry_for`) with exponential backoff and full jitter; a broker that refuses the
backend (PublishRefused: its certificate or policy) is logged for an admin, since trying again
cannot help. Every task is safe to run twice.
"""

import logging

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from . import services
from .exceptions import BrokerUnavailable, PublishRefused

logger = logging.getLogger(__name__)


class KitPublishTask(DjangoTask):
    """A task that publishes one message to a kit through the broker. `what` names it in logs."""

    what = ""
    autoretry_for = (BrokerUnavailable,)
    retry_jitter = True
    throws = (BrokerUnavailable, PublishRefused)  # logged in words below, without a traceback

    # Celery reads the backoff once, when it builds the task, in whole seconds (at least 1).
    @property
    def retry_backoff(self) -> float:
        return settings.CONTROL_PUBLISH_RETRY_BASE_SECONDS

    @property
    def retry_backoff_max(self) -> float:
        return settings.CONTROL_PUBLISH_RETRY_MAX_SECONDS

    @property
    def max_retries(self) -> int:
        return settings.CONTROL_PUBLISH_MAX_RETRIES

    def delay_on_commit(self, subject: str) -> None:
        """Queue the task once the current transaction commits (at once outside one). A Celery
        broker that cannot be reached is logged rather than raised into the person's request:
        the configuration sweep queues an unpublished configuration again; a command expires."""

        def enqueue() -> None:
            try:
                self.delay(subject)
            except OperationalError as error:
                logger.warning("%s %s not queued: the Celery broker is unreachable (%s).", self.what, subject, error)

        transaction.on_commit(enqueue, robust=True)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        subject = args[0] if args else next(iter(kwargs.values()), "?")
        if isinstance(exc, PublishRefused):
            logger.error("%s %s: the broker refused it for good: %s", self.what, subject, exc.message)
        elif isinstance(exc, BrokerUnavailable):
            logger.warning(
                "%s %s gave up after %d attempts (%s)", self.what, subject, self.request.retries + 1, exc.message
            )


@shared_task(name="control.configuration_publish", base=KitPublishTask, what="Publishing the configuration of kit")
def configuration_publish_task(kit_id: str) -> None:
    services.configuration_publish(kit_id=kit_id)


@shared_task(name="control.command_send", base=KitPublishTask, what="Sending command")
def command_send_task(command_id: str) -> None:
    services.command_send(command_id=command_id)


@shared_task(name="control.commands_expire")
def commands_expire_task() -> None:
    expired = services.commands_expire()
    if expired:
        logger.info("Marked %d command(s) expired: their kits did not answer in time.", expired)


@shared_task(name="control.configurations_publish_sweep")
def configurations_publish_sweep_task() -> None:
    queued = services.configurations_publish_sweep(older_than_seconds=settings.CONTROL_PUBLISH_STALE_SECONDS)
    if queued:
        logger.info("Queued again the unpublished configuration of %d kit(s): %s", len(queued), ", ".join(queued))
