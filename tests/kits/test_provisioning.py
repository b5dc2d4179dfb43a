"""Provisioning, rotation and decommissioning against the real moto_server, with the AWS state
that results read back through boto3: things, principals, policies, certificate status."""

import io
import json
import tomllib
import zipfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from django.db import connection

from kits import bundles, provisioning, registry
from kits.exceptions import KitBusy, KitStateConflict, ProvisioningPermanentError
from kits.iot_policy import kit_policy_document
from kits.models import Kit, KitCertificate, ProvisioningStatus
from kits.registry import SensorSpec

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def register(kit_id: str) -> Kit:
    return registry.kit_register(
        id=kit_id,
        name="Balcony basil",
        sensors=[
            SensorSpec("temperature", "temperature", "°C", -10, 50),
            SensorSpec("humidity", "humidity", "%", 0, 100),
        ],
    )


def aws_certificates_of(iot, thing_name: str) -> dict[str, str]:
    """Every certificate registered on AWS IoT for this thing name (its common name), with its
    status: found through AWS alone, so a certificate our database forgot still counts."""
    found = {}
    # Every page: moto is shared by the whole run, and an absence seen on the first page alone
    # proves nothing.
    summaries = [c for page in iot.get_paginator("list_certificates").paginate() for c in page["certificates"]]
    for summary in summaries:
        pem = iot.describe_certificate(certificateId=summary["certificateId"])["certificateDescription"]
        certificate = x509.load_pem_x509_certificate(pem["certificatePem"].encode())
        names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        if names and names[0].value == thing_name:
            found[summary["certificateId"]] = summary["status"]
    return found


def things_named(iot, thing_name: str) -> list[str]:
    """The things of this name on AWS IoT, over every page of the shared moto."""
    pages = iot.get_paginator("list_things").paginate()
    return [t["thingName"] for page in pages for t in page["things"] if t["thingName"] == thing_name]


def bundle_files(certificate: KitCertificate) -> dict[str, bytes]:
    with bundles.bundle_open(certificate.bundle_path) as file:
        archive = zipfile.ZipFile(io.BytesIO(file.read()))
    return {name: archive.read(name) for name in archive.namelist()}


def test_a_registered_kit_is_provisioned_as_one_thing_with_one_active_certificate(iot, unique_kit_id):
    # Given a kit just registered
    kit = register(unique_kit_id())
    assert kit.provisioning_status == ProvisioningStatus.PENDING

    # When its provisioning runs
    provisioning.kit_provision(kit_id=kit.id)

    # Then it is active, as thing astroplant-<id>
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert kit.provisioning_failure_reason == ""
    thing = iot.describe_thing(thingName=f"astroplant-{kit.id}")
    assert thing["thingArn"] == kit.thing_arn
    assert thing["attributes"] == {"kit_id": kit.id}
    # with exactly one certificate attached, active, carrying only the kit policy
    assert iot.list_thing_principals(thingName=kit.thing_name)["principals"] == [kit.certificate_arn]
    assert aws_certificates_of(iot, kit.thing_name) == {kit.certificate_id: "ACTIVE"}
    policies = iot.list_attached_policies(target=kit.certificate_arn)["policies"]
    assert [p["policyName"] for p in policies] == ["astroplant-kit"]
    document = json.loads(iot.get_policy(policyName="astroplant-kit")["policyDocument"])
    assert document == kit_policy_document(region="eu-central-1", account_id="123456789012")


def test_the_bundle_holds_what_the_pi_needs_and_the_database_no_private_key(iot, unique_kit_id, settings):
    # Given a provisioned kit with two sensors and two actuators, in Amsterdam
    kit = register(unique_kit_id())
    registry.kit_update(
        kit=kit,
        time_zone="Europe/Amsterdam",
        actuators=[registry.ActuatorSpec("led", "light", True), registry.ActuatorSpec("fan", "fan")],
    )
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    certificate = kit.certificates.get()

    # When its bundle is opened
    files = bundle_files(certificate)

    # Then it has the certificate AWS IoT knows, the key that matches it, the CA and kit.toml
    assert set(files) == {"certificate.pem.crt", "private.pem.key", "root-ca.pem", "kit.toml", "README.txt"}
    registered = iot.describe_certificate(certificateId=kit.certificate_id)["certificateDescription"]
    assert files["certificate.pem.crt"].decode() == registered["certificatePem"]
    device_certificate = x509.load_pem_x509_certificate(files["certificate.pem.crt"])
    key = serialization.load_pem_private_key(files["private.pem.key"], password=None)
    assert key.public_key().public_numbers() == device_certificate.public_key().public_numbers()
    root_ca = x509.load_pem_x509_certificate(files["root-ca.pem"])
    device_certificate.verify_directly_issued_by(root_ca)
    config = tomllib.loads(files["kit.toml"].decode())
    assert config["kit"] == {"id": kit.id, "thing_name": f"astroplant-{kit.id}", "time_zone": "Europe/Amsterdam"}
    assert config["mqtt"]["endpoint"] == settings.IOT_MQTT_ENDPOINT
    assert config["mqtt"]["port"] == settings.IOT_MQTT_PORT
    assert config["mqtt"]["client_id"] == kit.thing_name
    assert config["topics"] == {
        "measurements": f"astroplant/kits/astroplant-{kit.id}/measurements",
        "status": f"astroplant/kits/astroplant-{kit.id}/status",
        "command-results": f"astroplant/kits/astroplant-{kit.id}/command-results",
        "config": f"astroplant/kits/astroplant-{kit.id}/config",
        "commands": f"astroplant/kits/astroplant-{kit.id}/commands",
    }
    assert [s["key"] for s in config["sensors"]] == ["humidity", "temperature"]
    assert config["sensors"][1] == {
        "key": "temperature",
        "quantity": "temperature",
        "unit": "°C",
        "min_value": -10.0,
        "max_value": 50.0,
    }
    assert config["actuators"] == [
        {"key": "fan", "kind": "fan", "dimmable": False, "driver": "simulated", "options": {}},
        {"key": "led", "kind": "light", "dimmable": True, "driver": "simulated", "options": {}},
    ]
    # And no table holds the private key
    private_key_text = files["private.pem.key"].decode().splitlines()[1]
    with connection.cursor() as cursor:
        for table in ("kits_kit", "kits_kitcertificate", "kits_bundledownload"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (our own table names)
            for row in cursor.fetchall():
                assert not any("PRIVATE KEY" in str(value) or private_key_text in str(value) for value in row)


def test_rotation_activates_a_new_certificate_and_deactivates_the_old_one(iot, unique_kit_id):
    # Given a provisioned kit with two sensors and two actuators, in Amsterdam
    kit = register(unique_kit_id())
    registry.kit_update(
        kit=kit,
        time_zone="Europe/Amsterdam",
        actuators=[registry.ActuatorSpec("led", "light", True), registry.ActuatorSpec("fan", "fan")],
    )
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    old = kit.certificates.get()

    # When an admin asks for a rotation and the worker carries it out (twice: a redelivery)
    provisioning.kit_certificate_rotation_request(kit_id=kit.id)
    assert Kit.objects.get(pk=kit.id).provisioning_status == ProvisioningStatus.PENDING
    provisioning.kit_certificate_rotate(kit_id=kit.id)
    provisioning.kit_certificate_rotate(kit_id=kit.id)

    # Then the kit is active on a new certificate, the only one attached to the thing
    kit.refresh_from_db()
    old.refresh_from_db()
    new = kit.certificates.exclude(pk=old.pk).get()
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert kit.certificate_id == new.aws_certificate_id != old.aws_certificate_id
    assert iot.list_thing_principals(thingName=kit.thing_name)["principals"] == [new.aws_certificate_arn]
    assert aws_certificates_of(iot, kit.thing_name) == {
        new.aws_certificate_id: "ACTIVE",
        old.aws_certificate_id: "INACTIVE",
    }
    assert iot.list_attached_policies(target=new.aws_certificate_arn)["policies"][0]["policyName"] == "astroplant-kit"
    assert iot.list_attached_policies(target=old.aws_certificate_arn)["policies"] == []
    # And only the new certificate's bundle is kept
    assert old.bundle_path == "" and old.state == "inactive"
    assert bundle_files(new)["certificate.pem.crt"].decode() == new.certificate_pem


def test_decommissioning_removes_thing_and_certificates_and_keeps_the_kit(iot, unique_kit_id):
    # Given a kit provisioned and then rotated (so it has an inactive certificate too)
    kit = register(unique_kit_id())
    provisioning.kit_provision(kit_id=kit.id)
    provisioning.kit_certificate_rotation_request(kit_id=kit.id)
    provisioning.kit_certificate_rotate(kit_id=kit.id)
    kit.refresh_from_db()
    thing_name = kit.thing_name
    bundle_paths = [c.bundle_path for c in kit.certificates.exclude(bundle_path="")]

    # When it is decommissioned
    provisioning.kit_decommission_request(kit_id=kit.id)
    provisioning.kit_decommission(kit_id=kit.id)

    # Then AWS IoT has neither its thing nor any of its certificates
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.DECOMMISSIONED
    assert things_named(iot, thing_name) == []
    assert aws_certificates_of(iot, thing_name) == {}
    # the shared policy stays, for the other kits
    assert iot.get_policy(policyName="astroplant-kit")["policyName"] == "astroplant-kit"
    # its bundles are gone from storage
    assert bundle_paths and not any(bundles.bundle_storage().exists(path) for path in bundle_paths)
    # and the kit is still in the registry, with its sensors, its certificates' record kept
    assert Kit.objects.get(pk=kit.id).sensors.count() == 2
    assert {c.state for c in kit.certificates.all()} == {"deleted"}
    # Decommissioning twice is refused with a clear message
    with pytest.raises(KitStateConflict, match="already decommissioned"):
        provisioning.kit_decommission_request(kit_id=kit.id)


def test_a_provisioned_kit_cannot_be_deleted_before_decommissioning(make_client, users, unique_kit_id):
    # Given a provisioned kit with two sensors and two actuators, in Amsterdam
    kit = register(unique_kit_id())
    registry.kit_update(
        kit=kit,
        time_zone="Europe/Amsterdam",
        actuators=[registry.ActuatorSpec("led", "light", True), registry.ActuatorSpec("fan", "fan")],
    )
    provisioning.kit_provision(kit_id=kit.id)

    # When staff delete it through the API
    response = make_client(users["staff"]).delete(f"/kits/{kit.id}")

    # Then they are told to decommission it first, and it stays
    assert response.status_code == 409
    assert "decommission it first" in response.json()["detail"]
    assert Kit.objects.filter(pk=kit.id).exists()


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize(
    "operation",
    [
        "DescribeThing",
        "CreateThing",
        "RegisterCertificateWithoutCA",
        "GetPolicy",
        "CreatePolicy",
        "AttachPolicy",
        "AttachThingPrincipal",
    ],
)
def test_a_crash_at_any_step_then_a_rerun_leaves_one_thing_and_one_active_certificate(
    iot, iot_faults, unique_kit_id, settings, operation, when
):
    # Given a fresh policy name, so that creating the policy is one of the steps
    settings.IOT_POLICY_NAME = unique_kit_id("policy")
    kit = register(unique_kit_id())
    # When the process dies just before (the call never reaches AWS) or just after (AWS did it,
    # we never heard) this step
    getattr(iot_faults, f"crash_{when}")(operation)
    with pytest.raises(Exception, match=f"died during {operation}"):
        provisioning.kit_provision(kit_id=kit.id)
    assert Kit.objects.get(pk=kit.id).provisioning_status == ProvisioningStatus.PROVISIONING
    iot_faults.clear()

    # and the task runs again
    provisioning.kit_provision(kit_id=kit.id)

    # Then the kit is active with exactly one thing and one certificate, attached to each other
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert things_named(iot, kit.thing_name) == [kit.thing_name]
    assert aws_certificates_of(iot, kit.thing_name) == {kit.certificate_id: "ACTIVE"}
    assert iot.list_thing_principals(thingName=kit.thing_name)["principals"] == [kit.certificate_arn]
    policies = iot.list_attached_policies(target=kit.certificate_arn)["policies"]
    assert [p["policyName"] for p in policies] == [settings.IOT_POLICY_NAME]
    assert kit.certificates.count() == 1


@pytest.mark.parametrize(
    "operation", ["UpdateCertificate", "DetachThingPrincipal", "DetachPolicy", "DeleteCertificate", "DeleteThing"]
)
def test_a_crash_while_decommissioning_then_a_rerun_leaves_nothing_behind(iot, iot_faults, unique_kit_id, operation):
    # Given a provisioned kit whose decommissioning dies right after this AWS step
    kit = register(unique_kit_id())
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    thing_name = kit.thing_name
    iot_faults.crash_after(operation)
    with pytest.raises(Exception, match="died during"):
        provisioning.kit_decommission(kit_id=kit.id)
    iot_faults.clear()

    # When it runs again
    provisioning.kit_decommission(kit_id=kit.id)

    # Then neither the thing nor its certificate is left on AWS IoT
    assert Kit.objects.get(pk=kit.id).provisioning_status == ProvisioningStatus.DECOMMISSIONED
    assert things_named(iot, thing_name) == []
    assert aws_certificates_of(iot, thing_name) == {}


def test_a_permanent_aws_refusal_fails_the_kit_with_the_reason(iot_faults, unique_kit_id):
    # Given AWS refuses to register certificates (say, the backend's role lacks the permission)
    kit = register(unique_kit_id())
    iot_faults.fail(
        "RegisterCertificateWithoutCA", "UnauthorizedException", times=99, status=401, message="Access denied"
    )

    # When the kit is provisioned
    with pytest.raises(ProvisioningPermanentError):
        provisioning.kit_provision(kit_id=kit.id)

    # Then it is failed, and the reason says what failed and what AWS said
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.FAILED
    assert kit.provisioning_failure_reason == (
        "Provisioning failed: Could not register the kit's certificate: "
        "AWS IoT refused with UnauthorizedException (Access denied)."
    )


def test_only_one_worker_at_a_time_changes_a_kit_and_a_dead_workers_hold_expires(unique_kit_id):
    from datetime import timedelta

    from django.utils import timezone

    # Given a kit held by another worker
    kit = register(unique_kit_id())
    Kit.objects.filter(pk=kit.id).update(
        provisioning_lease_token="other", provisioning_lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    # Then provisioning it now is refused as busy (a transient error: the task retries later)
    with pytest.raises(KitBusy):
        provisioning.kit_provision(kit_id=kit.id)

    # When that worker's hold has expired (it died), the kit is taken over and provisioned
    Kit.objects.filter(pk=kit.id).update(provisioning_lease_expires_at=timezone.now() - timedelta(seconds=1))
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert kit.provisioning_lease_token == ""


@pytest.mark.django_db(transaction=True)  # the worker renews its lease from a thread of its own
def test_a_worker_keeps_its_hold_on_a_kit_however_long_an_aws_call_takes(iot, iot_faults, unique_kit_id, settings):
    import time

    # Given leases of two seconds, and a worker provisioning a kit whose certificate registration
    # AWS takes five seconds to answer
    settings.PROVISIONING_LEASE_SECONDS = 2
    kit = register(unique_kit_id())
    second_worker = []

    def another_worker_tries_meanwhile():
        time.sleep(5)
        try:
            provisioning.kit_provision(kit_id=kit.id)
        except KitBusy:
            second_worker.append("refused")
        else:
            second_worker.append("took the kit over")

    iot_faults.meanwhile("RegisterCertificateWithoutCA", another_worker_tries_meanwhile, when="before")

    # When a second worker picks the kit up meanwhile
    provisioning.kit_provision(kit_id=kit.id)

    # Then it is refused: the first worker's hold never lapsed while it waited for AWS
    assert second_worker == ["refused"]
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert aws_certificates_of(iot, kit.thing_name) == {kit.certificate_id: "ACTIVE"}
    assert kit.provisioning_lease_token == ""


def test_a_worker_that_lost_its_hold_on_a_kit_stops_before_its_next_step(iot_faults, unique_kit_id):
    from datetime import timedelta

    from django.utils import timezone

    # Given a worker provisioning a kit, which another worker takes over while the first waits for
    # AWS to create the thing (say the first could not renew its lease in time)
    kit = register(unique_kit_id())

    def another_worker_takes_over():
        Kit.objects.filter(pk=kit.id).update(
            provisioning_lease_token="another", provisioning_lease_expires_at=timezone.now() + timedelta(minutes=1)
        )

    iot_faults.meanwhile("CreateThing", another_worker_takes_over)

    # When the first worker hears back, then it stops (a transient error: its task retries later)
    with pytest.raises(KitBusy, match="taken over by another worker"):
        provisioning.kit_provision(kit_id=kit.id)
    # before issuing a certificate, whose bundle the other worker would take for a dead attempt's
    assert kit.certificates.count() == 0 and bundles.bundle_names_of_kit(kit.id) == []
    # and it leaves the other worker's hold alone
    assert Kit.objects.get(pk=kit.id).provisioning_lease_token == "another"


def test_retry_and_rotation_refuse_kits_in_the_wrong_state(unique_kit_id):
    kit = register(unique_kit_id())
    with pytest.raises(KitStateConflict, match="pending, not failed"):
        provisioning.kit_provisioning_retry(kit_id=kit.id)
    with pytest.raises(KitStateConflict, match="only an active kit's certificate can be rotated"):
        provisioning.kit_certificate_rotation_request(kit_id=kit.id)


def test_the_sweep_requeues_kits_left_pending_too_long(unique_kit_id, settings):
    from datetime import timedelta

    from django.utils import timezone

    # Given one kit pending for an hour (its message was lost) and one just registered
    forgotten, fresh = register(unique_kit_id()), register(unique_kit_id())
    Kit.objects.filter(pk=forgotten.id).update(provisioning_status_changed_at=timezone.now() - timedelta(hours=1))
    settings.PROVISIONING_STALE_SECONDS = 600

    # When the sweep runs, then only the forgotten one is queued again
    assert provisioning.kits_provisioning_sweep() == [forgotten.id]
    assert fresh.id not in provisioning.kits_provisioning_sweep()


def test_a_kit_queued_again_by_the_sweep_is_left_to_the_worker_for_a_while(unique_kit_id, settings):
    from datetime import timedelta

    from django.utils import timezone

    # Given a kit pending for an hour, which the sweep has just queued again
    settings.PROVISIONING_STALE_SECONDS = 600
    kit = register(unique_kit_id())
    Kit.objects.filter(pk=kit.id).update(provisioning_status_changed_at=timezone.now() - timedelta(hours=1))
    assert provisioning.kits_provisioning_sweep() == [kit.id]

    # When the sweep runs again before a worker got to it (a backlog), then it is not queued twice
    assert kit.id not in provisioning.kits_provisioning_sweep()
    # but it is once another stale period has passed
    Kit.objects.filter(pk=kit.id).update(provisioning_status_changed_at=timezone.now() - timedelta(seconds=601))
    assert provisioning.kits_provisioning_sweep() == [kit.id]


def test_a_bundle_left_by_an_attempt_that_died_before_recording_it_is_deleted(moto_server, unique_kit_id):
    # Given an attempt saved a bundle (with a private key) and died before its certificate row
    kit = register(unique_kit_id())
    orphan = bundles.bundle_save(kit_id=kit.id, fingerprint="0" * 64, content=b"a bundle with a private key")
    assert bundles.bundle_names_of_kit(kit.id) == [orphan]

    # When the kit is provisioned again
    provisioning.kit_provision(kit_id=kit.id)

    # Then only the bundle of its active certificate is kept
    kit.refresh_from_db()
    assert bundles.bundle_names_of_kit(kit.id) == [kit.certificates.get().bundle_path]


def test_make_run_reprovisions_every_kit_in_its_fresh_local_aws(iot, unique_kit_id, settings):
    # Given a kit that was active in an earlier `make run`, whose moto_server has since gone
    kit = register(unique_kit_id())
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    old_bundle = kit.certificates.get().bundle_path
    # (the local AWS forgets it, as a restart of moto_server would)
    iot.update_certificate(certificateId=kit.certificate_id, newStatus="INACTIVE")
    iot.detach_thing_principal(thingName=kit.thing_name, principal=kit.certificate_arn)
    iot.detach_policy(policyName="astroplant-kit", target=kit.certificate_arn)
    iot.delete_certificate(certificateId=kit.certificate_id)
    iot.delete_thing(thingName=kit.thing_name)

    # When make run starts again and forgets the old AWS side
    queued = provisioning.kits_provisioning_restart_local()

    # Then the kit is pending again, and its provisioning makes it active in the new AWS
    assert kit.id in queued
    assert Kit.objects.get(pk=kit.id).provisioning_status == ProvisioningStatus.PENDING
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert iot.list_thing_principals(thingName=kit.thing_name)["principals"] == [kit.certificate_arn]
    assert not bundles.bundle_storage().exists(old_bundle)


def test_reprovision_all_is_refused_outside_local_settings(settings):
    from django.core.management import CommandError, call_command

    settings.DEMO_DATA_ALLOWED = False
    with pytest.raises(CommandError, match="local settings only"):
        call_command("reprovision_all")


@pytest.mark.parametrize(
    "endpoint, reason",
    [
        ("", "IOT_MQTT_ENDPOINT is not set"),
        ("abc-ats.iot.eu-central-1.amazonaws.com", "set IOT_BROKER_CA_FILE to AmazonRootCA1.pem"),
    ],
)
def test_missing_production_settings_fail_the_kit_with_what_to_set(
    moto_server, unique_kit_id, settings, endpoint, reason
):
    # Given production settings without the MQTT endpoint, or without Amazon's root CA
    settings.IOT_MQTT_ENDPOINT = endpoint
    settings.IOT_BROKER_CA_FILE = ""
    kit = register(unique_kit_id())

    # When the kit is provisioned, then it fails, saying which setting to set
    with pytest.raises(ProvisioningPermanentError):
        provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    assert kit.provisioning_status == ProvisioningStatus.FAILED
    assert reason in kit.provisioning_failure_reason
