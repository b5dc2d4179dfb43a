"""Celery tasks of the kit registry: thin, named, given a kit id, each calling one service.

Transient failures (AWS throttling or unreachable, another worker holding the kit) are retried by
Celery itself (`autoretry_for`), with exponential backoff and full jitter; when the retries run
out, or on a permanent failure, the kit is left `failed` with the reason, for an admin to read and
retry. Every task is safe to run twice.
"""

import logging

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError

from . import provisioning
from .exceptions import KitNotFound, ProvisioningPermanentError, ProvisioningTransientError

logger = logging.getLogger(__name__)


class KitAwsTask(DjangoTask):
    """A task that drives one kit's AWS side, given the kit's id. `work` names it for people
    ("Provisioning"), in logs and in the reason a kit fails with."""

    work = ""
    autoretry_for = (ProvisioningTransientError,)
    # Full jitter (a wait drawn from 0 to the backoff): kits throttled together come back apart.
    retry_jitter = True
    # Expected outcomes, each recorded on the kit and logged in words by on_failure: Celery logs
    # them without a traceback.
    throws = (KitNotFound, ProvisioningPermanentError, ProvisioningTransientError)

    # Celery reads the backoff once, when it builds the task (as the worker starts), and takes it
    # in whole seconds, at least 1; it reads max_retries at each retry.
    @property
    def retry_backoff(self) -> float:
        return settings.PROVISIONING_RETRY_BASE_SECONDS

    @property
    def retry_backoff_max(self) -> float:
        return settings.PROVISIONING_RETRY_MAX_SECONDS

    @property
    def max_retries(self) -> int:
        return settings.PROVISIONING_MAX_RETRIES

    def delay_on_commit(self, kit_id: str) -> None:
        """Queue the task for the kit once the current transaction commits (at once outside one).
        Unlike Celery's own, a broker that cannot be reached is logged rather than raised into the
        admin's request: the provisioning sweep queues the kit again later."""

        def enqueue() -> None:
            try:
                self.delay(kit_id)
            except OperationalError as error:
                logger.warning(
                    "Could not queue the %s of kit %s: the Celery broker is unreachable (%s). The provisioning "
                    "sweep queues it again once the broker is back.",
                    self.work.lower(),
                    kit_id,
                    error,
                )

        transaction.on_commit(enqueue, robust=True)  # robust: any other failure is logged, never the admin's

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        kit_id = args[0] if args else kwargs["kit_id"]
        if isinstance(exc, KitNotFound):
            logger.info("%s of kit %s skipped: the kit no longer exists.", self.work, kit_id)
        elif isinstance(exc, ProvisioningPermanentError):
            # The service has recorded the reason on the kit; retrying cannot help.
            logger.warning("%s of kit %s failed for good: %s", self.work, kit_id, exc.message)
        elif isinstance(exc, ProvisioningTransientError):  # Celery's retries have run out
            reason = f"{self.work} gave up after {self.request.retries + 1} attempts. Last error: {exc.message}"
            provisioning.kit_provisioning_give_up(kit_id=kit_id, reason=reason)
            logger.warning("%s of kit %s: %s", self.work, kit_id, reason)


@shared_task(name="kits.provision", base=KitAwsTask, work="Provisioning")
def kit_provision_task(kit_id: str) -> None:
    provisioning.kit_provision(kit_id=kit_id)


@shared_task(name="kits.rotate_certificate", base=KitAwsTask, work="Certificate rotation")
def kit_certificate_rotate_task(kit_id: str) -> None:
    provisioning.kit_certificate_rotate(kit_id=kit_id)


@shared_task(name="kits.decommission", base=KitAwsTask, work="Decommissioning")
def kit_decommission_task(kit_id: str) -> None:
    provisioning.kit_decommission(kit_id=kit_id)


@shared_task(name="kits.provisioning_sweep")
def kits_provisioning_sweep_task() -> None:
    queued = provisioning.kits_provisioning_sweep()
    if queued:
        logger.info("Queued again %d kit(s) whose provisioning seemed lost: %s", len(queued), ", ".join(queued))
