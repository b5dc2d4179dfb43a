"""Dead letters in the admin: every kit message the ingest bridge refused, with its reason."""

from django.contrib import admin

from .dead_letters import DeadLetter


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = ["received_at", "kit_id", "topic", "reason"]
    list_filter = [("received_at", admin.DateFieldListFilter)]
    search_fields = ["kit_id", "topic", "reason"]
    readonly_fields = ["received_at", "kit_id", "topic", "reason", "payload_preview"]
    exclude = ["payload"]
    date_hierarchy = "received_at"

    def has_add_permission(self, request):
        return False  # only the bridge writes them

    def has_change_permission(self, request, obj=None):
        return False  # evidence: read or delete, never edit
