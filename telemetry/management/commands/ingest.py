"""`manage.py ingest`: the ingest bridge, from the kits' MQTT topics into DynamoDB."""

import signal
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from telemetry.ingest import IngestBridge, broker_settings, local_credentials_ensure
from telemetry.mqtt_subscriber import Subscriber


class Command(BaseCommand):
    help = "Subscribe to every kit's measurements and status, and store them (runs until stopped)."

    def add_arguments(self, parser):
        parser.add_argument("--batch-size", type=int, default=1000, help="messages stored per DynamoDB round")
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
        bridge = IngestBridge(Subscriber(settings), batch_size=batch_size)
        signal.signal(signal.SIGTERM, lambda *_: bridge.stop())
        signal.signal(signal.SIGINT, lambda *_: bridge.stop())
        self.stdout.write(f"Ingesting from {settings.host}:{settings.port} as {settings.client_id}; Ctrl-C stops.")
        bridge.run(report_every_seconds=report_every)
