"""Where admins register and manage kits. Saving goes through the services, like the API."""

from django.contrib import admin

from . import services
from .models import Kit, Membership, Sensor


class SensorInline(admin.TabularInline):
    model = Sensor
    extra = 1


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


@admin.register(Kit)
class KitAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "admin_email", "public", "last_seen", "ip_address"]
    list_filter = ["public", ("last_seen", admin.DateFieldListFilter)]
    search_fields = ["id", "name", "description", "admin_email"]
    readonly_fields = ["ip_address", "last_seen", "created_at", "updated_at"]
    inlines = [SensorInline, MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # The id is the thing name on AWS IoT and in every MQTT topic: fixed once registered.
        if obj is not None:
            return ["id", *self.readonly_fields]
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # A new kit is registered like one from the API; the inlines then add its sensors
        # and members to it.
        kit = services.kit_register(
            id=obj.id or None,
            name=obj.name,
            description=obj.description,
            admin_email=obj.admin_email,
            public=obj.public,
        )
        obj.pk = kit.pk
        obj._state.adding = False
