"""`manage.py demo_setup`: the demo admin, a demo grower and demo kits, for local development."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from control import services as control_services
from kits import memberships, registry
from kits.models import Kit, Role
from kits.registry import ActuatorSpec, SensorSpec

DEMO_SENSORS = [
    SensorSpec("temperature", "temperature", "°C", -10, 50),
    SensorSpec("humidity", "humidity", "%", 0, 100),
    SensorSpec("co2", "co2", "ppm", 200, 5000),
    SensorSpec("light", "light", "lux", 0, 100000),
]
# A dimmable LED panel and an on/off fan: localdev/simulated_kit.py gives the simulated kits
# drivers for exactly these.
DEMO_ACTUATORS = [ActuatorSpec("led", "light", dimmable=True), ActuatorSpec("fan", "fan", dimmable=False)]
DEMO_TIME_ZONE = "Europe/Amsterdam"
# What the demo kits are first asked to run, from the cloud: a reading every 5 s, the panel on a
# day's schedule and the fan as a thermostat. A configurer changes it on the kit page.
DEMO_CONFIGURATION = {
    "interval_seconds": 5,
    "actuators": {
        "led": {"mode": "schedule", "periods": [{"from": "06:00", "to": "22:00", "level": 80}]},
        "fan": {"mode": "thermostat", "sensor": "temperature", "on_above": 26.0, "off_below": 25.0},
    },
}
DEMO_KITS = [
    ("demo-kit-1", "Basil on the balcony", True),
    ("demo-kit-2", "Classroom lettuce", True),
    ("demo-kit-3", "Tomato greenhouse", False),
]


class Command(BaseCommand):
    help = "Create the demo admin (admin/admin), a demo grower (grower/grower) and three demo kits."

    def handle(self, *args, **options):
        if not getattr(settings, "DEMO_DATA_ALLOWED", False):
            raise CommandError("Demo data with known passwords is for local settings only.")
        User = get_user_model()
        admin, created = User.objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.org"}
        )
        if created:
            admin.set_password("admin")
            admin.save()
        grower, created = User.objects.get_or_create(username="grower", defaults={"email": "grower@example.org"})
        if created:
            grower.set_password("grower")
            grower.save()
        for kit_id, name, public in DEMO_KITS:
            kit = Kit.objects.filter(pk=kit_id).first()
            if kit is not None:
                if not kit.actuators.exists():  # a demo kit from before kits had actuators
                    registry.kit_update(kit=kit, actuators=DEMO_ACTUATORS, time_zone=DEMO_TIME_ZONE)
                    self.stdout.write(f"gave kit {kit.id} its LED panel and fan")
                continue
            kit = registry.kit_register(
                id=kit_id,
                name=name,
                description=f"A demo kit: {name.lower()}.",
                admin_email="grower@example.org",
                public=public,
                time_zone=DEMO_TIME_ZONE,
                sensors=DEMO_SENSORS,
                actuators=DEMO_ACTUATORS,
            )
            memberships.membership_add(kit=kit, username=grower.username, role=Role.OWNER)
            self.stdout.write(f"created kit {kit.id}")
        for kit_id, _, _ in DEMO_KITS:
            kit = Kit.objects.get(pk=kit_id)
            if not kit.configuration_versions.exists():
                control_services.configuration_change(kit=kit, desired=DEMO_CONFIGURATION, user=grower)
                self.stdout.write(f"configured kit {kit.id}: LED panel on a schedule, fan as a thermostat")
        self.stdout.write(
            self.style.SUCCESS("Demo data ready: admin/admin (staff), grower/grower (owns the demo kits).")
        )
