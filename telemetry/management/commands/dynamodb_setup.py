"""`manage.py dynamodb_setup`: create the telemetry tables (and their TTL); safe to run again."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from telemetry.exceptions import TelemetryUnavailable
from telemetry.services import telemetry_tables_setup


class Command(BaseCommand):
    help = "Create or update the DynamoDB tables for telemetry (TTL included). Safe to run again."

    def handle(self, *args, **options):
        self.stdout.write(f"DynamoDB tables with prefix '{settings.DYNAMODB_TABLE_PREFIX}' in {settings.AWS_REGION}:")
        try:
            for line in telemetry_tables_setup():
                self.stdout.write(f"  {line}")
        except TelemetryUnavailable as error:
            raise CommandError(error.message) from error
        self.stdout.write(self.style.SUCCESS("Telemetry tables ready."))
