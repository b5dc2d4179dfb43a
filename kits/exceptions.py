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
