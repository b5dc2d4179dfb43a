"""The AWS IoT adapter: the only module that talks to AWS IoT (through boto3).

It returns plain dataclasses and turns every botocore error into one of ours: `AwsUnavailable`
(throttled, unreachable, AWS's own fault: worth retrying) or `AwsRequestRejected` (AWS refused the
request: retrying will not help). Every operation here is idempotent, so the provisioning state
machine can repeat any step after a crash: creating what exists returns it, removing what is gone
does nothing.

Locally the endpoint is moto_server, chosen by boto's own AWS_ENDPOINT_URL_IOT / AWS_ENDPOINT_URL.
"""

import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from .exceptions import AwsRequestRejected, AwsUnavailable, ProvisioningMisconfigured

# Error codes that mean "not now" rather than "not ever".
TRANSIENT_ERROR_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "TooManyRequestsException",
        "LimitExceededException",  # IoT's word for a rate limit on some operations
        "ServiceUnavailableException",
        "InternalFailureException",
        "InternalException",
        "InternalServerException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)
NOT_FOUND = "ResourceNotFoundException"
ALREADY_EXISTS = "ResourceAlreadyExistsException"

# botocore would retry throttling itself, invisibly; the Celery task retries instead, with a
# backoff it logs and a limit it records, so there is one retry policy to reason about.
CLIENT_CONFIG = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=20)


@dataclass(frozen=True)
class Thing:
    name: str
    arn: str


@dataclass(frozen=True)
class RegisteredCertificate:
    certificate_id: str
    arn: str


@dataclass(frozen=True)
class CertificateDescription:
    certificate_id: str
    arn: str
    status: str  # ACTIVE, INACTIVE, REVOKED, ...


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def iot_client():
    """The boto3 IoT client for the current region and endpoint, shared by the process's threads
    (botocore clients are thread-safe; creating one is not, hence the lock). Tests reach it to
    inject faults through its event hooks."""
    from django.conf import settings

    key = (settings.AWS_REGION, os.environ.get("AWS_ENDPOINT_URL_IOT"), os.environ.get("AWS_ENDPOINT_URL"))
    with _clients_lock:
        if key not in _clients:
            session = boto3.session.Session()
            _clients[key] = session.client("iot", region_name=settings.AWS_REGION, config=CLIENT_CONFIG)
        return _clients[key]


@contextmanager
def _aws(action: str) -> Iterator[None]:
    """Runs one AWS call, translating botocore's errors into ours. `action` completes the
    sentence "Could not ..." for the admin who reads the failure."""
    try:
        yield
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "") or str(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in TRANSIENT_ERROR_CODES or status >= 500:
            raise AwsUnavailable(f"Could not {action}: AWS IoT answered {code or status} ({message}).") from error
        raise AwsRequestRejected(f"Could not {action}: AWS IoT refused with {code} ({message}).", code=code) from error
    except NoCredentialsError as error:
        raise ProvisioningMisconfigured(
            f"Could not {action}: no AWS credentials are configured for the backend."
        ) from error
    except ParamValidationError as error:
        raise AwsRequestRejected(f"Could not {action}: {error}", code="ParamValidationError") from error
    except (BotoConnectionError, HTTPClientError) as error:
        raise AwsUnavailable(f"Could not {action}: AWS IoT could not be reached ({error}).") from error
    except BotoCoreError as error:
        raise AwsUnavailable(f"Could not {action}: {error}") from error


# --- Things ----------------------------------------------------------------------------------


def thing_ensure(*, name: str, attributes: dict[str, str]) -> Thing:
    """The thing `name`, created with `attributes` if it does not exist yet."""
    found = thing_find(name=name)
    if found is not None:
        return found
    try:
        with _aws(f"create the thing {name}"):
            response = iot_client().create_thing(thingName=name, attributePayload={"attributes": attributes})
    except AwsRequestRejected as error:
        if error.code != ALREADY_EXISTS:
            raise
        # Created by a concurrent attempt with other attributes: it is still our kit's thing.
        found = thing_find(name=name)
        if found is None:
            raise
        return found
    return Thing(name=response["thingName"], arn=response["thingArn"])


def thing_find(*, name: str) -> Thing | None:
    try:
        with _aws(f"look up the thing {name}"):
            response = iot_client().describe_thing(thingName=name)
    except AwsRequestRejected as error:
        if error.code == NOT_FOUND:
            return None
        raise
    return Thing(name=response["thingName"], arn=response["thingArn"])


def thing_delete(*, name: str) -> None:
    """Delete the thing; a thing already gone is fine. Its principals must be detached first."""
    try:
        with _aws(f"delete the thing {name}"):
            iot_client().delete_thing(thingName=name)
    except AwsRequestRejected as error:
        if error.code != NOT_FOUND:
            raise


def thing_principals(*, name: str) -> list[str]:
    """The certificate ARNs attached to the thing (empty if the thing does not exist)."""
    try:
        with _aws(f"list the certificates of the thing {name}"):
            pages = iot_client().get_paginator("list_thing_principals").paginate(thingName=name)
            return [arn for page in pages for arn in page.get("principals", [])]
    except AwsRequestRejected as error:
        if error.code == NOT_FOUND:
            return []
        raise


def thing_principal_attach(*, thing_name: str, certificate_arn: str) -> None:
    with _aws(f"attach the certificate to the thing {thing_name}"):
        iot_client().attach_thing_principal(thingName=thing_name, principal=certificate_arn)


def thing_principal_detach(*, thing_name: str, certificate_arn: str) -> None:
    """Detach the certificate from the thing; if either is gone or they are not attached, fine."""
    try:
        with _aws(f"detach the certificate from the thing {thing_name}"):
            iot_client().detach_thing_principal(thingName=thing_name, principal=certificate_arn)
    except AwsRequestRejected as error:
        if error.code != NOT_FOUND:
            raise


# --- Certificates ----------------------------------------------------------------------------


def certificate_register(*, certificate_pem: str) -> RegisteredCertificate:
    """Register a certificate signed by our own CA, active at once. Registering one that is
    already registered (a retry after a crash) returns the existing registration."""
    try:
        with _aws("register the kit's certificate"):
            response = iot_client().register_certificate_without_ca(certificatePem=certificate_pem, status="ACTIVE")
    except AwsRequestRejected as error:
        if error.code != ALREADY_EXISTS:
            raise
        # AWS names the existing certificate in the error itself.
        body = error.__cause__.response
        return RegisteredCertificate(certificate_id=body["resourceId"], arn=body["resourceArn"])
    return RegisteredCertificate(certificate_id=response["certificateId"], arn=response["certificateArn"])


def certificate_describe(*, certificate_id: str) -> CertificateDescription | None:
    try:
        with _aws("look up the kit's certificate"):
            description = iot_client().describe_certificate(certificateId=certificate_id)["certificateDescription"]
    except AwsRequestRejected as error:
        if error.code == NOT_FOUND:
            return None
        raise
    return CertificateDescription(
        certificate_id=description["certificateId"], arn=description["certificateArn"], status=description["status"]
    )


def certificate_deactivate(*, certificate_id: str) -> None:
    """Set the certificate INACTIVE: AWS IoT refuses connections with it from now on."""
    try:
        with _aws("deactivate the kit's certificate"):
            iot_client().update_certificate(certificateId=certificate_id, newStatus="INACTIVE")
    except AwsRequestRejected as error:
        if error.code != NOT_FOUND:
            raise


def certificate_delete(*, certificate_id: str) -> None:
    """Delete an inactive, detached certificate; one already gone is fine."""
    try:
        with _aws("delete the kit's certificate"):
            iot_client().delete_certificate(certificateId=certificate_id)
    except AwsRequestRejected as error:
        if error.code != NOT_FOUND:
            raise


# --- Policies --------------------------------------------------------------------------------


def policy_ensure(*, name: str, document: dict) -> None:
    """Make `name` exist with `document` as its default version. An older document is replaced
    by a new default version (the oldest non-default version is pruned: AWS keeps at most five)."""
    client = iot_client()
    wanted = json.dumps(document, sort_keys=True)
    try:
        with _aws(f"read the policy {name}"):
            current = client.get_policy(policyName=name)
    except AwsRequestRejected as error:
        if error.code != NOT_FOUND:
            raise
        try:
            with _aws(f"create the policy {name}"):
                client.create_policy(policyName=name, policyDocument=json.dumps(document))
        except AwsRequestRejected as error:
            if error.code != ALREADY_EXISTS:  # a concurrent task created it: fine
                raise
        return
    if json.dumps(json.loads(current["policyDocument"]), sort_keys=True) == wanted:
        return
    with _aws(f"update the policy {name}"):
        versions = client.list_policy_versions(policyName=name)["policyVersions"]
        old = sorted((v for v in versions if not v["isDefaultVersion"]), key=lambda v: v["createDate"])
        if len(versions) >= 5 and old:
            client.delete_policy_version(policyName=name, policyVersionId=old[0]["versionId"])
        client.create_policy_version(policyName=name, policyDocument=json.dumps(document), setAsDefault=True)


def policy_attach(*, name: str, certificate_arn: str) -> None:
    with _aws(f"attach the policy {name} to the kit's certificate"):
        iot_client().attach_policy(policyName=name, target=certificate_arn)


def policy_detach(*, name: str, certificate_arn: str) -> None:
    """Detach the policy; if it, the certificate or the attachment is gone, fine."""
    try:
        with _aws(f"detach the policy {name} from the kit's certificate"):
            iot_client().detach_policy(policyName=name, target=certificate_arn)
    except AwsRequestRejected as error:
        if error.code != NOT_FOUND:
            raise


def policies_of_certificate(*, certificate_arn: str) -> list[str]:
    with _aws("list the policies of the kit's certificate"):
        response = iot_client().list_attached_policies(target=certificate_arn)
    return [policy["policyName"] for policy in response.get("policies", [])]
