"""The dashboard's reads: kits from the registry joined with their latest telemetry.

Permission scoping stays in `kits.selectors`: everything here starts from a kit the caller may see.
"""

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DatabaseError
from django.db.models import QuerySet

from kits.models import Kit
from kits.selectors import kits_visible_to
from telemetry import selectors as telemetry_selectors

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SensorLatest:
    key: str
    label: str
    unit: str
    value: float | None
    at: datetime | None

    @property
    def value_text(self) -> str:
        """At most two decimals and no trailing zeros: 22.5, 640, 0.07."""
        return f"{self.value:.2f}".rstrip("0").rstrip(".") if self.value is not None else ""


@dataclass(frozen=True)
class KitSummary:
    """What a kit card and a kit page's header show."""

    kit: Kit
    role: str | None
    sensors: list[SensorLatest]
    last_reading_at: datetime | None
    online: bool
    # How long ago the latest reading was, when the summary was made.
    last_reading_age: timedelta | None = None
    # False when DynamoDB could not be asked: the page then says so instead of "no readings".
    telemetry_available: bool = True
    # The kit's actuators with their latest levels (unit %), labelled by kind and key.
    actuators: list[SensorLatest] = field(default_factory=list)

    @property
    def has_readings(self) -> bool:
        return self.last_reading_at is not None


def kits_of_member(*, user) -> QuerySet[Kit]:
    """The kits `user` has a role in."""
    return kits_visible_to(user).filter(caller_role__isnull=False).order_by("name", "id")


def kits_others_visible(*, user) -> QuerySet[Kit]:
    """Kits `user` may see without a role in them: public kits, and every kit for staff."""
    return kits_visible_to(user).filter(caller_role__isnull=True).order_by("name", "id")


def kit_summaries(*, kits: list[Kit], now: datetime) -> list[KitSummary]:
    """Each kit with its sensors' latest values, read for all of them in one query."""
    latest, available = _latest_values(kit_ids=[kit.id for kit in kits])
    return [_kit_summary(kit, latest.get(kit.id, {}), now=now, available=available) for kit in kits]


def kit_summary(*, kit: Kit, now: datetime) -> KitSummary:
    """One kit with its sensors' latest values, its last reading time and its online mark."""
    latest, available = _latest_values(kit_ids=[kit.id])
    return _kit_summary(kit, latest.get(kit.id, {}), now=now, available=available)


def _latest_values(*, kit_ids: list[str]) -> tuple[dict, bool]:
    """The kits' latest values, and whether they could be read."""
    try:
        return telemetry_selectors.latest_values(kit_ids=kit_ids), True
    except DatabaseError:
        # The kit list still shows the kits when their values cannot be read; only those are missing.
        logger.warning("Latest values of kits %s unavailable", kit_ids, exc_info=True)
        return {}, False


def _kit_summary(kit: Kit, newest, *, now: datetime, available: bool) -> KitSummary:
    sensors = []
    for sensor in kit.sensors.all():
        point = newest.get(sensor.key)
        sensors.append(
            SensorLatest(
                key=sensor.key,
                label=sensor.get_quantity_display(),
                unit=sensor.unit,
                value=point.value if point else None,
                at=_datetime_of(point.timestamp_ms) if point else None,
            )
        )
    actuators = []
    for actuator in kit.actuators.all():
        point = newest.get(actuator.key)
        actuators.append(
            SensorLatest(
                key=actuator.key,
                label=actuator_label(actuator),
                unit=actuator.unit,
                value=point.value if point else None,
                at=_datetime_of(point.timestamp_ms) if point else None,
            )
        )
    last_reading_at = _datetime_of(max(p.timestamp_ms for p in newest.values())) if newest else None
    return KitSummary(
        kit=kit,
        role=getattr(kit, "caller_role", None),
        sensors=sensors,
        last_reading_at=last_reading_at,
        online=kit_is_online(last_reading_at=last_reading_at, now=now),
        last_reading_age=now - last_reading_at if last_reading_at else None,
        telemetry_available=available,
        actuators=actuators,
    )


def actuator_label(actuator) -> str:
    """Such as "Light: led": the kind says what it does, the key which one of its kind ("Fan"
    alone for an actuator whose key is its kind)."""
    kind = actuator.get_kind_display()
    return kind if actuator.key == actuator.kind else f"{kind}: {actuator.key}"


def _datetime_of(timestamp_ms: int) -> datetime:
    return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)


def kit_is_online(*, last_reading_at: datetime | None, now: datetime) -> bool:
    """Online while the latest reading is at most DASHBOARD_ONLINE_WITHIN_MINUTES old. A reading
    stamped a little in the future (a kit's clock running ahead) still counts as recent."""
    if last_reading_at is None:
        return False
    return now - last_reading_at <= timedelta(minutes=settings.DASHBOARD_ONLINE_WITHIN_MINUTES)
