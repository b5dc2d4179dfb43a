"""When each kit was last heard from, and from which address: recorded by the ingest bridge
(telemetry/ingest.py) for every batch of messages it stores."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Q

from .models import Kit


@dataclass(frozen=True)
class KitSighting:
    """A kit was heard from at `at`, from `ip_address` if its message said."""

    kit_id: str
    at: datetime
    ip_address: str | None = None


def kits_seen_record(*, sightings: Iterable[KitSighting]) -> None:
    """Move each kit's last-seen time forward (never back: messages arrive out of order after an
    outage) and keep the IP address it reported most recently."""
    newest: dict[str, KitSighting] = {}
    newest_with_ip: dict[str, KitSighting] = {}
    for sighting in sightings:
        for table in (newest, newest_with_ip) if sighting.ip_address else (newest,):
            if sighting.kit_id not in table or sighting.at > table[sighting.kit_id].at:
                table[sighting.kit_id] = sighting
    with transaction.atomic():  # one commit for the whole batch of kits
        for kit_id, sighting in newest.items():
            Kit.objects.filter(pk=kit_id).filter(Q(last_seen__isnull=True) | Q(last_seen__lt=sighting.at)).update(
                last_seen=sighting.at
            )
        for kit_id, sighting in newest_with_ip.items():
            Kit.objects.filter(pk=kit_id).exclude(ip_address=sighting.ip_address).update(ip_address=sighting.ip_address)
