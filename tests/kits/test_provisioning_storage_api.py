"""Where provisioning shows outside the worker: the bundles' private storage (S3 against moto_server),
the bundle download's permission, `provisioning_status` in GET /kits/{id}, and the project CA."""

import io
import zipfile
from multiprocessing.pool import ThreadPool

import boto3
import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from kits import bundles, provisioning, registry
from kits.certificates import authority_load_or_create, device_certificate_issue
from kits.models import BundleDownload, Kit, ProvisioningStatus


@pytest.fixture
def s3_bundle_storage(moto_server, settings, unique_kit_id):
    """settings as in production: bundles in a private S3 bucket (here on moto_server)."""
    bucket = unique_kit_id("bundles")
    boto3.client("s3", region_name="eu-central-1").create_bucket(
        Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    settings.STORAGES = {
        **settings.STORAGES,
        "kit_bundles": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": bucket,
                "location": "kit-bundles",
                "default_acl": "private",
                "querystring_auth": True,
                "file_overwrite": False,
                "object_parameters": {"ServerSideEncryption": "AES256"},
                "region_name": "eu-central-1",
            },
        },
    }
    return bucket


@pytest.mark.integration
@pytest.mark.django_db
def test_bundles_live_in_a_private_encrypted_s3_bucket(s3_bundle_storage, unique_kit_id, users):
    s3 = boto3.client("s3", region_name="eu-central-1")
    # Given bundle storage on S3, when a kit is provisioned
    kit = registry.kit_register(id=unique_kit_id(), name="In the cloud")
    provisioning.kit_provision(kit_id=kit.id)
    kit.refresh_from_db()
    certificate = kit.certificates.get()

    # Then its bundle is an object in the bucket, encrypted at rest and readable by the owner only
    key = f"kit-bundles/{certificate.bundle_path}"
    head = s3.head_object(Bucket=s3_bundle_storage, Key=key)
    assert head["ServerSideEncryption"] == "AES256"
    grants = s3.get_object_acl(Bucket=s3_bundle_storage, Key=key)["Grants"]
    assert [grant["Permission"] for grant in grants] == ["FULL_CONTROL"]
    assert all("URI" not in grant["Grantee"] for grant in grants)  # no AllUsers / AuthenticatedUsers
    stored = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=s3_bundle_storage, Key=key)["Body"].read()))
    assert stored.read("certificate.pem.crt").decode() == certificate.certificate_pem

    # When staff allowed to download bundles download it from the admin
    staff = users["staff"]
    staff.user_permissions.add(
        Permission.objects.get(codename="view_kit"), Permission.objects.get(codename="download_bundle")
    )
    browser = Client()
    browser.force_login(staff)
    response = browser.get(f"/admin/kits/kit/{kit.id}/bundle/")

    # Then they get the same zip, streamed from S3, and the download is on record
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == bundles.bundle_open(certificate.bundle_path).read()
    assert BundleDownload.objects.get(certificate=certificate).username == "staff"

    # When the kit is decommissioned, then its bundle is deleted from the bucket
    provisioning.kit_decommission(kit_id=kit.id)
    assert s3.list_objects_v2(Bucket=s3_bundle_storage).get("KeyCount") == 0


@pytest.mark.integration
@pytest.mark.django_db
def test_staff_without_the_permission_cannot_download_a_bundle(moto_server, users, unique_kit_id):
    # Given a provisioned kit and a staff member who may view kits but not download bundles
    kit = registry.kit_register(id=unique_kit_id(), name="Guarded")
    provisioning.kit_provision(kit_id=kit.id)
    users["staff"].user_permissions.add(Permission.objects.get(codename="view_kit"))
    browser = Client()
    browser.force_login(users["staff"])

    # When they try, then they are refused and nothing is logged
    assert browser.get(f"/admin/kits/kit/{kit.id}/bundle/").status_code == 403
    assert not BundleDownload.objects.exists()
    # And a grower, not staff, is sent to the admin's sign-in page
    browser.force_login(users["owner"])
    assert browser.get(f"/admin/kits/kit/{kit.id}/bundle/").status_code == 302


@pytest.mark.integration
@pytest.mark.django_db
def test_a_bundle_download_is_logged_with_the_address_the_load_balancer_saw(
    moto_server, users, settings, unique_kit_id
):
    # Given the site behind one load balancer, and staff allowed to download a provisioned kit's bundle
    settings.TRUSTED_PROXY_COUNT = 1
    kit = registry.kit_register(id=unique_kit_id(), name="Downloaded")
    provisioning.kit_provision(kit_id=kit.id)
    users["staff"].user_permissions.add(
        Permission.objects.get(codename="view_kit"), Permission.objects.get(codename="download_bundle")
    )
    browser = Client()
    browser.force_login(users["staff"])

    # When they download it through the balancer (with an address of their own invention before theirs)
    response = browser.get(
        f"/admin/kits/kit/{kit.id}/bundle/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.7"
    )

    # Then the log holds their address as the balancer saw it, not the balancer's
    assert response.status_code == 200
    assert BundleDownload.objects.get(certificate__kit=kit).ip_address == "203.0.113.7"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "who, sees",
    [("staff", True), ("owner", True), ("configurer", False), ("viewer", False), ("nonmember", False), (None, False)],
)
def test_provisioning_status_is_shown_to_staff_and_owners_only(make_client, users, public_kit, who, sees):
    # Given a public kit that failed provisioning
    Kit.objects.filter(pk=public_kit.id).update(provisioning_status=ProvisioningStatus.FAILED)

    # When someone reads it
    response = make_client(users[who] if who else None).get(f"/kits/{public_kit.id}")

    # Then only its owners and staff see its provisioning status
    assert response.status_code == 200
    assert response.json()["provisioning_status"] == ("failed" if sees else None)


@pytest.mark.django_db
def test_a_new_kit_from_the_api_is_pending_and_queued_for_provisioning(
    make_client, users, django_capture_on_commit_callbacks
):
    # When staff register a kit through the API
    with django_capture_on_commit_callbacks(execute=False) as queued:
        response = make_client(users["staff"]).post("/kits", {"id": "api-kit", "name": "From the app"}, format="json")

    # Then it is pending, and its provisioning is queued for when the registration commits
    assert response.status_code == 201
    assert response.json()["provisioning_status"] == "pending"
    assert len(queued) == 1


def test_processes_starting_together_share_one_project_ca(tmp_path):
    # When eight workers all need the CA at once and none exists yet
    directory = tmp_path / "ca"
    with ThreadPool(8) as pool:
        authorities = pool.map(lambda _: authority_load_or_create(directory), range(8))

    # Then they all got the same CA, and a certificate it signs verifies against it
    assert len({authority.certificate_pem for authority in authorities}) == 1
    issued = device_certificate_issue(authority=authorities[0], common_name="astroplant-x", valid_days=1)
    from cryptography import x509

    x509.load_pem_x509_certificate(issued.certificate_pem.encode()).verify_directly_issued_by(
        authorities[3].certificate
    )
    assert oct((directory / "ca.key").stat().st_mode & 0o777) == "0o600"


@pytest.mark.integration
@pytest.mark.django_db
def test_editing_a_kit_in_the_admin_keeps_its_provisioning(moto_server, unique_kit_id):
    from django.contrib.auth import get_user_model

    # Given an active kit, with its certificate listed on its admin page
    kit = registry.kit_register(id=unique_kit_id(), name="Before")
    provisioning.kit_provision(kit_id=kit.id)
    browser = Client()
    browser.force_login(get_user_model().objects.create_superuser("root", "root@example.org", "pw"))
    page = browser.get(f"/admin/kits/kit/{kit.id}/change/").content.decode()
    assert "certificates (newest first)" in page.lower()

    # When an admin renames it, posting the page's forms back
    certificate = kit.certificates.get()
    response = browser.post(
        f"/admin/kits/kit/{kit.id}/change/",
        {
            "name": "After",
            "description": "",
            "admin_email": "",
            "time_zone": "UTC",
            "sensors-TOTAL_FORMS": "0",
            "sensors-INITIAL_FORMS": "0",
            "actuators-TOTAL_FORMS": "0",
            "actuators-INITIAL_FORMS": "0",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
            "certificates-TOTAL_FORMS": "1",
            "certificates-INITIAL_FORMS": "1",
            "certificates-0-id": str(certificate.pk),
            "certificates-0-kit": kit.id,
            "_save": "Save",
        },
    )

    # Then the name changed and the kit is still active on the same certificate
    assert response.status_code == 302, response.content.decode()[:3000]
    kit.refresh_from_db()
    assert kit.name == "After"
    assert kit.provisioning_status == ProvisioningStatus.ACTIVE
    assert kit.certificate_id == certificate.aws_certificate_id
