"""What can go wrong in the kit registry. `astroplant_site.api_errors` maps these to HTTP once."""


class KitError(Exception):
    """Base of the kit registry's errors. `message` is written for the person who caused it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class KitNotFound(KitError):
    """The kit does not exist, or the caller may not see it: the two are indistinguishable."""

    def __init__(self, kit_id: str):
        super().__init__(f"There is no kit with id '{kit_id}' that you may see.")
        self.kit_id = kit_id


class KitPermissionDenied(KitError):
    """The caller may see the kit but not do this to it."""


class KitInvalid(KitError):
    """The request breaks a rule of the registry. `field_errors` maps a field to its messages."""

    def __init__(self, field_errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in field_errors.items()))
        self.field_errors = field_errors


class MemberNotFound(KitError):
    def __init__(self, kit_id: str, username: str):
        super().__init__(f"'{username}' is not a member of kit '{kit_id}'.")


class KitStateConflict(KitError):
    """The kit is not in a state that allows this, e.g. rotating the certificate of a kit that was
    never provisioned. The message says what state it is in and what to do instead."""


# --- Provisioning on AWS IoT -------------------------------------------------------------------
# The task layer needs one question answered about every failure: is it worth trying again?
# Transient errors are retried with backoff; permanent ones end the attempt and are shown to
# admins as the kit's failure reason, so their messages are written for an admin.


class ProvisioningError(KitError):
    """Base of everything that can stop a kit's provisioning, rotation or decommissioning."""


class ProvisioningTransientError(ProvisioningError):
    """Trying again later may well succeed."""


class ProvisioningPermanentError(ProvisioningError):
    """Trying again unchanged will fail the same way: someone has to fix something first."""


class AwsUnavailable(ProvisioningTransientError):
    """AWS throttled us, timed out, could not be reached or had an internal error."""


class AwsRequestRejected(ProvisioningPermanentError):
    """AWS refused the request itself: no permission, an invalid value, a limit reached."""

    def __init__(self, message: str, *, code: str = ""):
        super().__init__(message)
        self.code = code


class KitBusy(ProvisioningTransientError):
    """Another worker is provisioning, rotating or decommissioning this kit right now."""


class ProvisioningMisconfigured(ProvisioningPermanentError):
    """A setting the provisioning needs is missing or wrong (the CA, the broker's CA, ...)."""
