"""`manage.py telemetry_seed --kit ID [--days N] [--interval SECONDS]`: synthetic history for a kit,
written through the same service as real readings."""

import itertools
import sys
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from tqdm import tqdm

from kits.models import Kit
from telemetry.exceptions import ReadingsNotStored, TelemetryUnavailable
from telemetry.selectors import rollup_marks_pending
from telemetry.services import readings_write, rollups_refresh
from telemetry.synthetic import DEMO_SENSORS, SyntheticSensor, synthetic_readings

# Readings per service call: a day at one-minute intervals, so the latest state and rollups are
# written once per day of history rather than once per reading.
CHUNK = 1440


class Command(BaseCommand):
    help = "Write realistic synthetic history (day/night curves per sensor) for a kit, ending now."

    def add_arguments(self, parser):
        parser.add_argument("--kit", required=True, help="The kit's id.")
        parser.add_argument("--days", type=float, default=7, help="How many days back (default 7).")
        parser.add_argument(
            "--interval", type=int, default=300, help="Seconds between readings (default 300; a kit sends 60)."
        )
        parser.add_argument("--seed", type=int, default=0, help="Another seed gives another history.")
        parser.add_argument("--no-progress", action="store_true", help="No progress bar (for logs).")

    def handle(self, *args, kit, days, interval, seed, no_progress, **options):
        try:
            kit_row = Kit.objects.prefetch_related("sensors").get(pk=kit)
        except Kit.DoesNotExist:
            raise CommandError(f"There is no kit '{kit}'. See `manage.py demo_setup` for demo kits.") from None
        longest = settings.TELEMETRY_RAW_RETENTION_DAYS - 2
        if not 0 < days <= longest:
            raise CommandError(f"--days must be more than 0 and at most {longest} (the raw retention, less a margin).")
        if not 1 <= interval <= 86_400:
            raise CommandError("--interval must be from 1 to 86400 seconds.")
        sensors = [SyntheticSensor(s.key, s.quantity, s.min_value, s.max_value) for s in kit_row.sensors.all()]
        if not sensors:
            sensors = DEMO_SENSORS
            self.stdout.write(f"Kit {kit} has no sensors configured: seeding the demo sensors.")
        step = timedelta(seconds=interval)
        end = timezone.now().replace(microsecond=0)
        start = end - timedelta(days=days)
        total = int((end - start) / step)
        readings = synthetic_readings(kit_id=kit, sensors=sensors, start=start, end=end, interval=step, seed=seed)
        written = 0
        with tqdm(total=total, unit="reading", desc=f"seeding {kit}", disable=no_progress, file=sys.stderr) as bar:
            while chunk := list(itertools.islice(readings, CHUNK)):
                try:
                    readings_write(readings=chunk)
                except ReadingsNotStored as error:
                    raise CommandError(f"After {written} readings: {error.message}") from error
                except TelemetryUnavailable as error:
                    raise CommandError(f"After {written} readings: {error.message}") from error
                written += len(chunk)
                bar.update(len(chunk))
        # The bridge rolls readings up a few minutes after it stores them; a seeded history is
        # rolled up now, so its long charts are there at once.
        pending = rollup_marks_pending(kit_ids=[kit])
        with tqdm(total=pending, unit="bucket", desc=f"rolling up {kit}", disable=no_progress, file=sys.stderr) as bar:
            while True:
                summary = rollups_refresh(everything=True, kit_ids=[kit], limit=500)
                if summary.failed:
                    raise CommandError(f"{summary.failed} rollup buckets could not be refreshed; run the seed again.")
                if not summary.hours + summary.days:
                    break
                bar.update(summary.hours + summary.days)
        keys = ", ".join(sensor.key for sensor in sensors)
        self.stdout.write(
            self.style.SUCCESS(f"Seeded {written} readings of {keys} for {kit}, every {interval} s over {days:g} days.")
        )
