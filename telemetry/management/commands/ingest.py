"""`manage.py ingest`: the ingest bridge, from the kits' MQTT topics into DynamoDB."""

import gc
import signal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from telemetry.exceptions import TelemetryUnavailable
from telemetry.ingest import IngestBridge, broker_settings, local_credentials_ensure
from telemetry.mqtt_subscriber import Subscriber
from telemetry.services import telemetry_tables_missing


class Command(BaseCommand):
    help = "Subscribe to every kit's measurements and status, and store them (runs until stopped)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=2000, help="most messages stored per DynamoDB round")
        parser.add_argument("--report-every", type=float, default=60.0, help="seconds between progress lines")

    def handle(self, *args, batch_size, report_every, **options):
        if local_credentials_ensure():
            self.stdout.write("Issued the bridge's local certificate from the project CA.")
        settings = broker_settings()
        for label, path in (
            ("certificate", settings.certificate),
            ("key", settings.private_key),
            ("root CA", settings.root_ca),
        ):
            if not Path(path).is_file():
                raise CommandError(f"The bridge's {label} file is missing: {path} (see INGEST_* settings).")
        self._tables_check()
        bridge = IngestBridge(Subscriber(settings), batch_size=batch_size)
        signal.signal(signal.SIGTERM, lambda *_: bridge.stop())
        signal.signal(signal.SIGINT, lambda *_: bridge.stop())
        self.stdout.write(
            f"Ingesting from {settings.host}:{settings.port} as {settings.client_id} "
            f"({', '.join(settings.topics)}); Ctrl-C stops."
        )
        # What start-up loaded (Django, botocore's service models) lives as long as the process:
        # frozen, the garbage collector stops walking it again on every full collection, which
        # it does often here, as each batch makes and drops thousands of objects.
        gc.freeze()
        bridge.run(report_every_seconds=report_every)

    def _tables_check(self) -> None:
        """Refuse to start against a DynamoDB without our tables (a wrong prefix or region, or
        `dynamodb_setup` not run yet), rather than dead-end every batch. A DynamoDB that cannot
        be reached now is no reason to stay down: the bridge retries until it answers. This is
        also the bridge's first DynamoDB call, so the first batch does not pay for the client."""
        try:
            missing = telemetry_tables_missing()
        except TelemetryUnavailable as error:
            self.stderr.write(f"DynamoDB cannot be reached yet ({error}); the bridge keeps trying.")
            return
        if missing:
            raise CommandError(
                f"DynamoDB has no table {', '.join(missing)}: run `python manage.py dynamodb_setup` "
                "(or check DYNAMODB_TABLE_PREFIX and AWS_REGION)."
            )
