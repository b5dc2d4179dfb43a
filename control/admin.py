"""Each kit's configuration and its history, and the commands sent to kits, for admins to read.
Read-only: configurations change through the API (and the dashboard), which check them against
the kit and send them; an edit here would do neither."""

import json

from django.contrib import admin
from django.utils.html import format_html, format_html_join

from . import selectors
from .models import Command, ConfigurationVersion, KitConfiguration


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


HISTORY_SHOWN = 50


def _pretty(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True)


def _json(value) -> str:
    if value is None:
        return "—"
    return format_html("<pre>{}</pre>", _pretty(value))


@admin.register(KitConfiguration)
class KitConfigurationAdmin(ReadOnlyAdmin):
    """One row per kit ever configured: its current version, what it reported, and its history."""

    list_display = ["kit", "version", "status", "applied_version", "published_version", "reported_at"]
    list_filter = ["report_status"]
    search_fields = ["kit__id", "kit__name"]
    fields = [
        "kit",
        "version",
        "status",
        "desired_json",
        "published_version",
        "published_at",
        "report_version",
        "report_status",
        "report_reason",
        "reported_at",
        "applied_version",
        "applied_at",
        "reported_json",
        "history",
    ]
    readonly_fields = fields

    @admin.display(description="history (newest first)")
    def history(self, state):
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><pre>{}</pre></td></tr>",
            (
                (v.version, v.changed_by_username or "—", f"{v.changed_at:%Y-%m-%d %H:%M:%S}Z", _pretty(v.desired))
                for v in selectors.configuration_history(kit=state.kit)[:HISTORY_SHOWN]
            ),
        )
        return format_html(
            "<table><tr><th>version</th><th>changed by</th><th>changed at</th><th>desired</th></tr>{}</table>", rows
        )

    @admin.display(description="status")
    def status(self, state):
        return selectors.configuration_of_kit(kit=state.kit).status

    @admin.display(description="desired (current version)")
    def desired_json(self, state):
        return _json(selectors.configuration_of_kit(kit=state.kit).desired)

    @admin.display(description="reported (what the kit runs)")
    def reported_json(self, state):
        return _json(state.applied_desired)


@admin.register(ConfigurationVersion)
class ConfigurationVersionAdmin(ReadOnlyAdmin):
    list_display = ["kit", "version", "changed_by_username", "changed_at"]
    list_filter = [("changed_at", admin.DateFieldListFilter)]
    search_fields = ["kit__id", "kit__name", "changed_by_username"]
    fields = ["kit", "version", "changed_by_username", "changed_at", "desired_json"]
    readonly_fields = fields

    @admin.display(description="desired")
    def desired_json(self, version):
        return _json(version.desired)


@admin.register(Command)
class CommandAdmin(ReadOnlyAdmin):
    list_display = ["id", "kit", "name", "status", "created_at", "expires_at", "answered_at"]
    list_filter = ["status", "name"]
    search_fields = ["id", "kit__id", "kit__name"]
    fields = ["id", "kit", "name", "arguments", "status", "result", "reason", "created_by", "created_at"]
    fields += ["expires_at", "sent_at", "answered_at"]
    readonly_fields = fields
