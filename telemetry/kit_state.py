"""Each kit's telemetry state in Django's database, beside the kits: its latest values, and the
rollup buckets waiting to be brought up to date.

Relational, not DynamoDB: both change with every batch of readings, and a row upsert costs no
DynamoDB write unit. One latest-state item per kit in DynamoDB cost as much as the reading
itself (a write unit per message); here the latest values cost nothing there, and rollups are
brought up to date a few minutes later, once for many readings (telemetry/services.py).
"""

from django.db import models

from kits.models import Kit


class LatestValue(models.Model):
    """A sensor's newest value of one kit. Written only forward: an older reading that arrives
    late (redelivered, or from another bridge) never replaces a newer one."""

    # No database constraint: a reading for a kit deleted a moment ago must not fail the batch
    # it came in. Django still deletes these rows with their kit.
    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    sensor = models.CharField(max_length=40)
    timestamp_ms = models.BigIntegerField()
    value = models.FloatField()

    class Meta:
        app_label = "telemetry"
        constraints = [models.UniqueConstraint(fields=["kit", "sensor"], name="latest_value_one_per_sensor")]

    def __str__(self) -> str:
        return f"{self.kit_id} {self.sensor} = {self.value} at {self.timestamp_ms}"


class RollupMark(models.Model):
    """A rollup bucket of a kit that new readings have changed: an hour ("h") or a UTC day ("d"),
    by its start. The bucket is recomputed from the raw readings once `due_ms` has passed.

    `generation` grows each time a writer marks the bucket again; a refresh removes the mark only
    if the generation is still the one it saw before it read the raw readings, so a reading
    stored while the refresh ran is never left out."""

    HOUR = "h"
    DAY = "d"

    kit = models.ForeignKey(Kit, on_delete=models.CASCADE, db_constraint=False, related_name="+")
    kind = models.CharField(max_length=1, choices=[(HOUR, "hour"), (DAY, "day")])
    bucket_ms = models.BigIntegerField()
    due_ms = models.BigIntegerField(db_index=True)
    generation = models.IntegerField(default=1)
    claimed_by = models.CharField(max_length=32, blank=True)

    class Meta:
        app_label = "telemetry"
        constraints = [models.UniqueConstraint(fields=["kit", "kind", "bucket_ms"], name="rollup_mark_one_per_bucket")]

    def __str__(self) -> str:
        return f"{self.kit_id} {self.kind} {self.bucket_ms} due {self.due_ms}"
