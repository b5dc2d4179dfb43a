"""`manage.py reprovision_all`: provision every kit anew, for a local AWS that starts empty."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from kits import provisioning


class Command(BaseCommand):
    help = (
        "Forget every kit's AWS IoT thing and certificates and queue its provisioning again. For "
        "`make run`, whose moto_server starts empty each time; refused outside local settings."
    )

    def handle(self, *args, **options):
        if not getattr(settings, "DEMO_DATA_ALLOWED", False):
            raise CommandError("This forgets real AWS resources: it is for local settings only.")
        queued = provisioning.kits_provisioning_restart_local()
        self.stdout.write(self.style.SUCCESS(f"Queued {len(queued)} kit(s) for provisioning on the local AWS."))
