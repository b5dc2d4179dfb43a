"""A kit's AWS IoT side, driven to where it should be: provisioning, certificate rotation and
decommissioning (the state machine of docs/provisioning.md), the requests admins make for them,
the sweep that queues lost work again, and the log of bundle downloads.

kit_provision, kit_certificate_rotate and kit_decommission are each run by a Celery task
(kits/tasks.py). Every step's result is saved before the next step starts and every AWS call is
idempotent, so running any of them again, after a crash at any point, finishes the job with one
thing and one active certificate. Admins ask for work with the *_request / *_retry services, which
queue the task on commit.
"""

import logging
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from . import aws_iot, bundles, tasks
from .certificates import CertificateAuthority, device_certificate_issue, project_authority
from .exceptions import (
    KitBusy,
    KitNotFound,
    KitStateConflict,
    ProvisioningMisconfigured,
    ProvisioningPermanentError,
)
from .iot_policy import account_of_arn, kit_policy_document, kit_topics, thing_name_for
from .models import BundleDownload, Kit, KitCertificate, ProvisioningStatus

logger = logging.getLogger(__name__)


def kit_provision(*, kit_id: str) -> Kit:
    """Make the kit an AWS IoT thing with one active certificate, signed by the project CA,
    carrying the kit policy and attached to the thing; then it is `active`. Resumes wherever
    an earlier attempt stopped. Also finishes an outstanding certificate rotation.

    Raises ProvisioningTransientError (retry later; the kit stays `provisioning`) or
    ProvisioningPermanentError (the kit is now `failed`, with the reason)."""
    with kit_held(kit_id) as kit:
        if kit.provisioning_status == ProvisioningStatus.DECOMMISSIONED or kit.decommission_requested_at:
            return kit  # retiring wins: kit_decommission does that work
        _run_recording_failure(kit, "Provisioning", _provisioning_converge, done=ProvisioningStatus.ACTIVE)
        return kit


def kit_certificate_rotation_request(*, kit_id: str) -> Kit:
    """Ask for a new certificate and bundle for an active kit; a worker then runs
    kit_certificate_rotate. The old certificate keeps working until the new one is active."""
    with transaction.atomic():
        kit = _kit_for_update(kit_id)
        if kit.provisioning_status != ProvisioningStatus.ACTIVE:
            raise KitStateConflict(
                f"Kit '{kit.id}' is {kit.provisioning_status}: only an active kit's certificate can be rotated."
            )
        kit.certificate_rotation_requested_at = timezone.now()
        _status_set(kit, ProvisioningStatus.PENDING, extra_fields=["certificate_rotation_requested_at"])
        tasks.kit_certificate_rotate_task.delay_on_commit(kit.id)
    return kit


def kit_certificate_rotate(*, kit_id: str) -> Kit:
    """Carry out an outstanding rotation request: a new certificate and bundle, then the old
    certificate deactivated and detached from the thing and the policy (kept, inactive, on AWS
    IoT for the record). Without an outstanding request it does nothing, so running it twice
    rotates once."""
    with kit_held(kit_id) as kit:
        if kit.certificate_rotation_requested_at is None or kit.decommission_requested_at:
            return kit
        _run_recording_failure(kit, "Certificate rotation", _provisioning_converge, done=ProvisioningStatus.ACTIVE)
        return kit


def kit_decommission_request(*, kit_id: str) -> Kit:
    """Ask for the kit to be retired from AWS IoT; a worker then runs kit_decommission."""
    with transaction.atomic():
        kit = _kit_for_update(kit_id)
        if kit.provisioning_status == ProvisioningStatus.DECOMMISSIONED:
            raise KitStateConflict(f"Kit '{kit.id}' is already decommissioned.")
        kit.decommission_requested_at = kit.decommission_requested_at or timezone.now()
        _status_set(kit, ProvisioningStatus.PENDING, extra_fields=["decommission_requested_at"])
        tasks.kit_decommission_task.delay_on_commit(kit.id)
    return kit


def kit_decommission(*, kit_id: str) -> Kit:
    """Retire the kit from AWS IoT: every certificate deactivated, detached from the thing and
    the policy, and deleted; the thing deleted; the bundles deleted. The kit stays in the
    registry, `decommissioned`, with its telemetry. Resumable like kit_provision."""
    with kit_held(kit_id) as kit:
        if kit.provisioning_status == ProvisioningStatus.DECOMMISSIONED:
            return kit
        if kit.decommission_requested_at is None:
            kit.decommission_requested_at = timezone.now()
            kit.save(update_fields=["decommission_requested_at"])
        _run_recording_failure(kit, "Decommissioning", _decommission_converge, done=ProvisioningStatus.DECOMMISSIONED)
        return kit


def kit_provisioning_retry(*, kit_id: str) -> Kit:
    """Queue a failed kit again: its decommissioning if that was asked for, else its
    provisioning (which also finishes a rotation)."""
    with transaction.atomic():
        kit = _kit_for_update(kit_id)
        if kit.provisioning_status != ProvisioningStatus.FAILED:
            raise KitStateConflict(f"Kit '{kit.id}' is {kit.provisioning_status}, not failed: nothing to retry.")
        _status_set(kit, ProvisioningStatus.PENDING)
        task = tasks.kit_decommission_task if kit.decommission_requested_at else tasks.kit_provision_task
        task.delay_on_commit(kit.id)
    return kit


def kit_provisioning_give_up(*, kit_id: str, reason: str) -> None:
    """Mark the kit `failed` with `reason` after its task ran out of retries."""
    with transaction.atomic():
        try:
            kit = _kit_for_update(kit_id)
        except KitNotFound:
            return
        if kit.provisioning_status in (ProvisioningStatus.ACTIVE, ProvisioningStatus.DECOMMISSIONED):
            return
        _status_set(kit, ProvisioningStatus.FAILED, reason=reason)


def kits_provisioning_sweep() -> list[str]:
    """Queue again the kits whose work seems lost: `pending` for longer than
    PROVISIONING_STALE_SECONDS (say the broker was down when they were registered), or
    `provisioning` that long with no worker holding them. A kit queued again is not queued
    again before another PROVISIONING_STALE_SECONDS pass. Returns their ids."""
    now = timezone.now()
    stale = now - timedelta(seconds=settings.PROVISIONING_STALE_SECONDS)
    unheld = Q(provisioning_lease_expires_at__isnull=True) | Q(provisioning_lease_expires_at__lt=now)
    waiting = (
        Q(provisioning_status=ProvisioningStatus.PENDING)
        | Q(provisioning_status=ProvisioningStatus.PROVISIONING) & unheld
    )
    long_ago = Q(provisioning_status_changed_at__lt=stale) | Q(provisioning_status_changed_at__isnull=True)
    kits = Kit.objects.filter(waiting & long_ago).values_list(
        "id", "decommission_requested_at", "certificate_rotation_requested_at"
    )
    queued = []
    for kit_id, decommission_requested_at, rotation_requested_at in kits:
        if decommission_requested_at:
            task = tasks.kit_decommission_task
        elif rotation_requested_at:
            task = tasks.kit_certificate_rotate_task
        else:
            task = tasks.kit_provision_task
        # Restart the kit's clock: the next sweeps leave it to the worker for another
        # PROVISIONING_STALE_SECONDS instead of queueing it again every time while it waits.
        with transaction.atomic():
            restarted = (
                Kit.objects.filter(pk=kit_id)
                .filter(waiting & long_ago)
                .update(provisioning_status_changed_at=timezone.now())
            )
            if restarted:  # else a worker took it meanwhile
                task.delay_on_commit(kit_id)
                queued.append(kit_id)
    return queued


def bundle_download_record(*, certificate: KitCertificate, user, ip_address: str | None) -> BundleDownload:
    """Log that `user` is downloading the certificate's bundle (which holds its private key)."""
    return BundleDownload.objects.create(
        certificate=certificate, user=user, username=user.get_username(), ip_address=ip_address
    )


# The steps. Each saves its result before the next runs.


def _provisioning_converge(kit: Kit) -> None:
    thing = aws_iot.thing_ensure(name=thing_name_for(kit.id), attributes={"kit_id": kit.id})
    if (kit.thing_name, kit.thing_arn) != (thing.name, thing.arn):
        kit.thing_name, kit.thing_arn = thing.name, thing.arn
        kit.save(update_fields=["thing_name", "thing_arn"])
    _lease_check(kit)
    certificate = _certificate_in_setup(kit)
    if certificate is None and _needs_new_certificate(kit):
        certificate = _certificate_issue(kit)
    if certificate is not None:
        _certificate_set_up(kit, certificate)
    for older in kit.certificates.filter(activated_at__isnull=False, deactivated_at__isnull=True).exclude(
        aws_certificate_id=kit.certificate_id
    ):
        _lease_check(kit)
        _certificate_retire(kit.thing_name, older)
    if kit.certificate_rotation_requested_at is not None:
        kit.certificate_rotation_requested_at = None
        kit.save(update_fields=["certificate_rotation_requested_at"])


def _needs_new_certificate(kit: Kit) -> bool:
    current = kit.certificates.filter(activated_at__isnull=False, deactivated_at__isnull=True).first()
    if current is None:
        return True
    requested = kit.certificate_rotation_requested_at
    return requested is not None and current.created_at < requested


def _certificate_in_setup(kit: Kit) -> KitCertificate | None:
    return kit.certificates.filter(activated_at__isnull=True, deactivated_at__isnull=True).first()


def _certificate_issue(kit: Kit) -> KitCertificate:
    """A new key and certificate, their bundle saved in private storage, then the row that
    remembers them (its unique constraint stops a racing second issue)."""
    # A bundle no certificate row names was saved by an attempt that died before recording it:
    # its key will never be used, and a private key must not lie around.
    recorded = set(kit.certificates.exclude(bundle_path="").values_list("bundle_path", flat=True))
    for name in bundles.bundle_names_of_kit(kit.id):
        if name not in recorded:
            bundles.bundle_delete(name)
    authority = project_authority()
    issued = device_certificate_issue(
        authority=authority, common_name=kit.thing_name, valid_days=settings.IOT_DEVICE_CERTIFICATE_DAYS
    )
    content = bundles.bundle_build(
        config=_device_config(kit),
        certificate_pem=issued.certificate_pem,
        private_key_pem=issued.private_key_pem,
        root_ca_pem=_broker_root_ca_pem(authority),
    )
    path = bundles.bundle_save(kit_id=kit.id, fingerprint=issued.fingerprint_sha256, content=content)
    try:
        with transaction.atomic():
            return KitCertificate.objects.create(
                kit=kit,
                fingerprint=issued.fingerprint_sha256,
                certificate_pem=issued.certificate_pem,
                not_after=issued.not_after,
                bundle_path=path,
            )
    except IntegrityError:
        bundles.bundle_delete(path)
        existing = _certificate_in_setup(kit)
        if existing is None:
            raise
        return existing


def _certificate_set_up(kit: Kit, certificate: KitCertificate) -> None:
    _lease_check(kit)
    if certificate.registered_at is None:
        registered = aws_iot.certificate_register(certificate_pem=certificate.certificate_pem)
        certificate.aws_certificate_id, certificate.aws_certificate_arn = registered.certificate_id, registered.arn
        certificate.registered_at = timezone.now()
        certificate.save(update_fields=["aws_certificate_id", "aws_certificate_arn", "registered_at"])
        _lease_check(kit)
    if certificate.policy_attached_at is None:
        document = kit_policy_document(
            region=settings.AWS_REGION, account_id=account_of_arn(certificate.aws_certificate_arn)
        )
        aws_iot.policy_ensure(name=settings.IOT_POLICY_NAME, document=document)
        aws_iot.policy_attach(name=settings.IOT_POLICY_NAME, certificate_arn=certificate.aws_certificate_arn)
        certificate.policy_attached_at = timezone.now()
        certificate.save(update_fields=["policy_attached_at"])
        _lease_check(kit)
    if certificate.thing_attached_at is None:
        aws_iot.thing_principal_attach(thing_name=kit.thing_name, certificate_arn=certificate.aws_certificate_arn)
        certificate.thing_attached_at = timezone.now()
        certificate.save(update_fields=["thing_attached_at"])
        _lease_check(kit)
    with transaction.atomic():
        certificate.activated_at = timezone.now()
        certificate.save(update_fields=["activated_at"])
        kit.certificate_id, kit.certificate_arn = certificate.aws_certificate_id, certificate.aws_certificate_arn
        kit.save(update_fields=["certificate_id", "certificate_arn"])


def _certificate_retire(thing_name: str, certificate: KitCertificate) -> None:
    """Deactivate first, so it can no longer connect, then detach; its bundle is deleted."""
    aws_iot.certificate_deactivate(certificate_id=certificate.aws_certificate_id)
    aws_iot.thing_principal_detach(thing_name=thing_name, certificate_arn=certificate.aws_certificate_arn)
    aws_iot.policy_detach(name=settings.IOT_POLICY_NAME, certificate_arn=certificate.aws_certificate_arn)
    bundles.bundle_delete(certificate.bundle_path)
    certificate.deactivated_at = timezone.now()
    certificate.bundle_path = ""
    certificate.save(update_fields=["deactivated_at", "bundle_path"])


def _decommission_converge(kit: Kit) -> None:
    thing_name = kit.thing_name or thing_name_for(kit.id)
    for certificate in kit.certificates.filter(deleted_at__isnull=True):
        _lease_check(kit)
        if not certificate.aws_certificate_arn:
            # It may have been registered by an attempt that crashed before saving the answer.
            # Registering again is how AWS tells us its id (or registers it, to delete it now).
            registered = aws_iot.certificate_register(certificate_pem=certificate.certificate_pem)
            certificate.aws_certificate_id, certificate.aws_certificate_arn = registered.certificate_id, registered.arn
            certificate.save(update_fields=["aws_certificate_id", "aws_certificate_arn"])
        if certificate.deactivated_at is None:
            _certificate_retire(thing_name, certificate)
        # Retired by a rotation: already detached from the thing; the policy detach is repeated
        # in case the rotation predates a change of policy name.
        aws_iot.policy_detach(name=settings.IOT_POLICY_NAME, certificate_arn=certificate.aws_certificate_arn)
        aws_iot.certificate_delete(certificate_id=certificate.aws_certificate_id)
        certificate.deleted_at = timezone.now()
        certificate.save(update_fields=["deleted_at"])
    _lease_check(kit)
    # Principals attached by hand in the console would stop the thing's deletion.
    for principal in aws_iot.thing_principals(name=thing_name):
        aws_iot.thing_principal_detach(thing_name=thing_name, certificate_arn=principal)
    aws_iot.thing_delete(name=thing_name)
    kit.thing_arn = kit.certificate_id = kit.certificate_arn = ""
    kit.certificate_rotation_requested_at = None
    kit.save(update_fields=["thing_arn", "certificate_id", "certificate_arn", "certificate_rotation_requested_at"])


def _run_recording_failure(kit: Kit, what: str, steps: Callable[[Kit], None], *, done: str) -> None:
    _status_set(kit, ProvisioningStatus.PROVISIONING)
    try:
        steps(kit)
    except ProvisioningPermanentError as error:
        _status_set(kit, ProvisioningStatus.FAILED, reason=f"{what} failed: {error.message}")
        raise
    _status_set(kit, done)


def _device_config(kit: Kit) -> bundles.DeviceConfig:
    if not settings.IOT_MQTT_ENDPOINT:
        raise ProvisioningMisconfigured(
            "IOT_MQTT_ENDPOINT is not set: kits would not know where to connect. Set it to the "
            "account's AWS IoT endpoint (xxxx-ats.iot.<region>.amazonaws.com)."
        )
    return bundles.DeviceConfig(
        kit_id=kit.id,
        thing_name=kit.thing_name,
        endpoint=settings.IOT_MQTT_ENDPOINT,
        port=settings.IOT_MQTT_PORT,
        topics=kit_topics(kit.thing_name),
        sensors=[bundles.SensorConfig(s.key, s.quantity, s.unit, s.min_value, s.max_value) for s in kit.sensors.all()],
        actuators=[bundles.ActuatorConfig(a.key, a.kind, a.dimmable) for a in kit.actuators.all()],
        time_zone=kit.time_zone,
    )


def _broker_root_ca_pem(authority: CertificateAuthority) -> str:
    if not settings.IOT_BROKER_CA_FILE:
        if settings.IOT_MQTT_ENDPOINT.endswith(".amazonaws.com"):
            raise ProvisioningMisconfigured(
                "AWS IoT Core's certificate is signed by Amazon's root CA, not ours: set IOT_BROKER_CA_FILE "
                "to AmazonRootCA1.pem so kits can check whom they connect to."
            )
        return authority.certificate_pem  # the local broker's certificate is signed by our CA
    try:
        return Path(settings.IOT_BROKER_CA_FILE).read_text()
    except OSError as error:
        raise ProvisioningMisconfigured(
            f"IOT_BROKER_CA_FILE names {settings.IOT_BROKER_CA_FILE}, which cannot be read ({error.strerror})."
        ) from None


def _status_set(kit: Kit, status: str, *, reason: str = "", extra_fields: Iterable[str] = ()) -> None:
    kit.provisioning_status = status
    kit.provisioning_failure_reason = reason
    kit.provisioning_status_changed_at = timezone.now()
    kit.save(
        update_fields=[
            "provisioning_status",
            "provisioning_failure_reason",
            "provisioning_status_changed_at",
            *extra_fields,
        ]
    )


def _kit_for_update(kit_id: str) -> Kit:
    try:
        return Kit.objects.select_for_update().get(pk=kit_id)
    except Kit.DoesNotExist:
        raise KitNotFound(kit_id) from None


@contextmanager
def kit_held(kit_id: str) -> Iterator[Kit]:
    """Hold the kit's provisioning lease while changing its AWS side (or deleting the kit): one
    worker at a time. KitBusy while another holds it. A lease is a conditional UPDATE rather than
    a row lock, so no transaction stays open across AWS calls.

    The lease lasts PROVISIONING_LEASE_SECONDS and is renewed every third of that, from a thread
    of its own, as long as it is held: it never lapses under a live worker, however long one AWS
    call takes, while a worker that dies stops renewing it and another takes over once it lapses.
    The steps check it too (_lease_check): a worker whose lease was taken over stops."""
    token = secrets.token_hex(16)
    claimed = (
        Kit.objects.filter(pk=kit_id)
        .filter(Q(provisioning_lease_expires_at__isnull=True) | Q(provisioning_lease_expires_at__lt=timezone.now()))
        .update(provisioning_lease_token=token, provisioning_lease_expires_at=_lease_expiry())
    )
    if not claimed:
        if not Kit.objects.filter(pk=kit_id).exists():
            raise KitNotFound(kit_id)
        raise KitBusy(f"Another worker is working on kit '{kit_id}' right now.")
    # Inside a transaction (kit_delete) no other worker sees the lease before the commit, and the
    # claim's row lock holds them off until then: nothing to renew, and a renewal from another
    # connection would wait for that lock.
    renewal = None if transaction.get_connection().in_atomic_block else _LeaseRenewal(kit_id, token)
    if renewal:
        renewal.start()
    try:
        yield Kit.objects.get(pk=kit_id)
    finally:
        if renewal:
            renewal.stop()
        Kit.objects.filter(pk=kit_id, provisioning_lease_token=token).update(
            provisioning_lease_token="", provisioning_lease_expires_at=None
        )


def _lease_expiry() -> datetime:
    return timezone.now() + timedelta(seconds=settings.PROVISIONING_LEASE_SECONDS)


def _lease_renew(kit_id: str, token: str) -> bool:
    """Extend the lease if `token` still holds it; False if it does not (released or taken over)."""
    renewed = Kit.objects.filter(pk=kit_id, provisioning_lease_token=token).update(
        provisioning_lease_expires_at=_lease_expiry()
    )
    return bool(renewed)


def _lease_check(kit: Kit) -> None:
    """Before each step: renew the lease, or stop if another worker has taken the kit over (this
    one could not renew in time, say the database was out of reach), so two never work at once."""
    if not _lease_renew(kit.pk, kit.provisioning_lease_token):
        raise KitBusy(f"Kit '{kit.id}' was taken over by another worker while this one waited; this one stops.")


class _LeaseRenewal(threading.Thread):
    """Renews one kit's lease every third of PROVISIONING_LEASE_SECONDS until stopped."""

    def __init__(self, kit_id: str, token: str):
        super().__init__(name=f"lease-renewal-{kit_id}", daemon=True)
        self.kit_id, self.token = kit_id, token
        self.interval = settings.PROVISIONING_LEASE_SECONDS / 3
        self._stopped = threading.Event()

    def run(self) -> None:
        try:
            while not self._stopped.wait(self.interval):
                try:
                    if not _lease_renew(self.kit_id, self.token):
                        return  # released or taken over: _lease_check stops the worker at its next step
                except DatabaseError as error:
                    logger.warning("Could not renew the lease on kit %s (%s); trying again.", self.kit_id, error)
        finally:
            connections.close_all()  # this thread's own connections

    def stop(self) -> None:
        self._stopped.set()
        self.join()


def kits_provisioning_restart_local() -> list[str]:
    """Forget every kit's AWS IoT side and queue it for provisioning again: for a local AWS
    (make run's moto_server) that starts empty each time. Never for real AWS, where it would
    leave live things and certificates behind. Decommissioned kits stay decommissioned."""
    now = timezone.now()
    queued = []
    for kit in Kit.objects.exclude(provisioning_status=ProvisioningStatus.DECOMMISSIONED):
        with transaction.atomic():
            for certificate in kit.certificates.filter(deleted_at__isnull=True):
                bundles.bundle_delete(certificate.bundle_path)
            kit.certificates.filter(deleted_at__isnull=True).update(bundle_path="", deactivated_at=now, deleted_at=now)
            kit.thing_arn = kit.certificate_id = kit.certificate_arn = ""
            kit.certificate_rotation_requested_at = None
            kit.provisioning_lease_token, kit.provisioning_lease_expires_at = "", None
            task = tasks.kit_decommission_task if kit.decommission_requested_at else tasks.kit_provision_task
            _status_set(
                kit,
                ProvisioningStatus.PENDING,
                extra_fields=[
                    "thing_arn",
                    "certificate_id",
                    "certificate_arn",
                    "certificate_rotation_requested_at",
                    "provisioning_lease_token",
                    "provisioning_lease_expires_at",
                ],
            )
            task.delay_on_commit(kit.id)
        queued.append(kit.id)
    return queued
