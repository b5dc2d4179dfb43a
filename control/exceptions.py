"""What can go wrong in controlling a kit. `astroplant_site.api_errors` maps these to HTTP once;
the ingest bridge turns a refused report into a dead letter; the Celery tasks retry the transient
ones."""


class ControlError(Exception):
    """Base of the control app's errors. `message` is written for the person who caused it."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ControlInvalid(ControlError):
    """A configuration or a command the kit cannot take. `field_errors` maps each field (a dotted
    path such as `desired.actuators.led.periods.0.from`) to its messages."""

    def __init__(self, field_errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in field_errors.items()))
        self.field_errors = field_errors


class CommandNotFound(ControlError):
    def __init__(self, kit_id: str, command_id: str):
        super().__init__(f"Kit '{kit_id}' has no command '{command_id}'.")


class ReportRefused(ControlError):
    """A kit's report (a configuration status, a command's result) that can never be recorded as
    it is: a command of another kit, a configuration version that was never sent."""


# --- Publishing over MQTT (control/mqtt_publisher.py) -------------------------------------------


class PublishError(ControlError):
    """The broker did not take a message."""


class BrokerUnavailable(PublishError):
    """The broker could not be reached, or did not confirm in time: trying again later may work."""


class PublishRefused(PublishError):
    """The broker refused the backend's connection or message (its certificate, its rights):
    trying again unchanged fails the same way; someone has to fix the broker's policy."""
