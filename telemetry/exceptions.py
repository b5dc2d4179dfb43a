"""What can go wrong with telemetry. `astroplant_site.api_errors` maps these to HTTP once."""


class TelemetryError(Exception):
    """Base of telemetry's errors. `message` is written for the person who reads it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TelemetryUnavailable(TelemetryError):
    """DynamoDB could not be reached, or kept refusing after our retries. Transient: try again."""


class TelemetryQueryInvalid(TelemetryError):
    """A data request breaks a rule (a bad time, sensor, resolution or page size).
    `field_errors` maps each query parameter to its messages."""

    def __init__(self, field_errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in field_errors.items()))
        self.field_errors = field_errors


class ReadingsNotStored(TelemetryError):
    """Some readings of a write were not stored, or were stored without their kit's latest state
    and rollups being brought up to date. `failed` lists each with its reason; every other
    reading of the write is stored. Writing the failed ones again is safe: writes are idempotent."""

    def __init__(self, failed: list, stored: int):
        reasons = sorted({failure.reason for failure in failed})
        super().__init__(f"{len(failed)} reading(s) not stored ({stored} stored): {'; '.join(reasons)}")
        self.failed = failed
        self.stored = stored


class RollupNotStorable(TelemetryError):
    """DynamoDB refuses a rollup item as it is (too large, say): retrying cannot help."""
