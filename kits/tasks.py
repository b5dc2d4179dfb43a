"""Celery tasks of the kit registry: thin, named, given a kit id, each calling one service.

Transient failures (AWS throttling or unreachable, another worker holding the kit) are retried
with exponential backoff; when the retries run out, or on a permanent failure, the kit is left
`failed` with the reason, for an admin to read and retry. Every task is safe to run twice.
"""

import logging
import random

from celery import shared_task
from django.conf import settings

from . import services
from .exceptions import KitNotFound, ProvisioningPermanentError, ProvisioningTransientError

logger = logging.getLogger(__name__)


def retry_countdown(attempt: int) -> float:
    """Seconds to wait before retry number `attempt` + 1: exponential, capped, with jitter so
    that kits throttled together do not all come back at the same instant."""
    ceiling = min(settings.PROVISIONING_RETRY_BASE_SECONDS * 2**attempt, settings.PROVISIONING_RETRY_MAX_SECONDS)
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 (jitter, not a secret)


def _run(task, service, kit_id: str, what: str) -> None:
    try:
        service(kit_id=kit_id)
    except KitNotFound:
        logger.info("%s of kit %s skipped: the kit no longer exists.", what, kit_id)
    except ProvisioningPermanentError as error:
        # The service has recorded the reason on the kit; retrying cannot help.
        logger.warning("%s of kit %s failed for good: %s", what, kit_id, error.message)
    except ProvisioningTransientError as error:
        attempt = task.request.retries
        if attempt >= settings.PROVISIONING_MAX_RETRIES:
            reason = f"{what} gave up after {attempt + 1} attempts. Last error: {error.message}"
            services.kit_provisioning_give_up(kit_id=kit_id, reason=reason)
            logger.warning("%s of kit %s: %s", what, kit_id, reason)
            return
        countdown = retry_countdown(attempt)
        logger.info("%s of kit %s: %s Retrying in %.1f s.", what, kit_id, error.message, countdown)
        raise task.retry(countdown=countdown, max_retries=None) from error


@shared_task(name="kits.provision", bind=True)
def kit_provision_task(self, kit_id: str) -> None:
    _run(self, services.kit_provision, kit_id, "Provisioning")


@shared_task(name="kits.rotate_certificate", bind=True)
def kit_certificate_rotate_task(self, kit_id: str) -> None:
    _run(self, services.kit_certificate_rotate, kit_id, "Certificate rotation")


@shared_task(name="kits.decommission", bind=True)
def kit_decommission_task(self, kit_id: str) -> None:
    _run(self, services.kit_decommission, kit_id, "Decommissioning")


@shared_task(name="kits.provisioning_sweep")
def kits_provisioning_sweep_task() -> None:
    queued = services.kits_provisioning_sweep()
    if queued:
        logger.info("Queued again %d kit(s) whose provisioning seemed lost: %s", len(queued), ", ".join(queued))
