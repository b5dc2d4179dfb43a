from django.apps import AppConfig


class ControlConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "control"
    verbose_name = "Kit control (configuration and commands)"

    def ready(self) -> None:
        from kits.signals import kit_time_zone_changed

        from . import services

        kit_time_zone_changed.connect(services.configuration_reissue_for_time_zone, dispatch_uid="control-time-zone")
