"""Dead letters: kit messages the ingest bridge refused, kept with the reason, for admins.

A relational model (in Django's database, beside the kits), not a DynamoDB table: admins browse,
filter and count them in the Django admin, and there are few of them.
"""

from django.db import models


class DeadLetter(models.Model):
    received_at = models.DateTimeField(db_index=True)
    topic = models.CharField(max_length=256)
    kit_id = models.CharField(
        max_length=64, blank=True, db_index=True, help_text="The kit its topic names, when it names one."
    )
    reason = models.TextField()
    payload = models.BinaryField(help_text="The message exactly as received (at most 128 KB).")

    class Meta:
        app_label = "telemetry"
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.topic} at {self.received_at:%Y-%m-%d %H:%M:%S}: {self.reason}"

    @property
    def payload_preview(self) -> str:
        return bytes(self.payload[:2000]).decode("utf-8", errors="replace")
