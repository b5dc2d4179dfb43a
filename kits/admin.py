"""Where admins register and manage kits. Saving and every action go through the services, like
the API; the certificate bundle is downloaded here, by staff allowed to, and each download is logged."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html

from . import bundles, provisioning, registry, selectors
from .exceptions import KitError
from .models import BundleDownload, Kit, KitCertificate, Membership, ProvisioningStatus, Sensor

PROVISIONING_FIELDS = [
    "provisioning_status",
    "provisioning_failure_reason",
    "provisioning_status_changed_at",
    "thing_name",
    "thing_arn",
    "certificate_id",
    "certificate_arn",
    "certificate_rotation_requested_at",
    "decommission_requested_at",
    "certificate_bundle",
]


class SensorInline(admin.TabularInline):
    model = Sensor
    extra = 1


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


class KitCertificateInline(admin.TabularInline):
    """The kit's certificates, newest first: read-only, written by the provisioning only."""

    model = KitCertificate
    extra = 0
    can_delete = False
    verbose_name_plural = "certificates (newest first)"
    fields = ["state", "aws_certificate_id", "not_after", "created_at", "activated_at", "deactivated_at", "downloads"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    @admin.display(description="state")
    def state(self, certificate):
        return certificate.state

    @admin.display(description="bundle downloads")
    def downloads(self, certificate):
        made = list(certificate.downloads.all()[:5])
        if not made:
            return "none"
        return "; ".join(f"{d.username} at {d.downloaded_at:%Y-%m-%d %H:%M}Z" for d in made)


@admin.register(Kit)
class KitAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "admin_email", "public", "provisioning_status", "failure_reason", "last_seen"]
    list_filter = ["provisioning_status", "public", ("last_seen", admin.DateFieldListFilter)]
    search_fields = ["id", "name", "description", "admin_email", "thing_name"]
    readonly_fields = ["ip_address", "last_seen", "created_at", "updated_at", *PROVISIONING_FIELDS]
    inlines = [SensorInline, MembershipInline, KitCertificateInline]
    actions = ["retry_provisioning", "rotate_certificate", "decommission"]

    def get_fieldsets(self, request, obj=None):
        kit = (None, {"fields": ["id", "name", "description", "admin_email", "public"]})
        if obj is None:
            return [kit]
        return [
            kit,
            ("Connection", {"fields": ["ip_address", "last_seen"]}),
            ("AWS IoT", {"fields": PROVISIONING_FIELDS}),
            ("Record", {"fields": ["created_at", "updated_at"]}),
        ]

    def get_readonly_fields(self, request, obj=None):
        # The id is the thing name on AWS IoT and in every MQTT topic: fixed once registered.
        if obj is not None:
            return ["id", *self.readonly_fields]
        return self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None else [SensorInline, MembershipInline]

    def save_model(self, request, obj, form, change):
        if change:
            # Only the fields of the form: a worker may have changed the provisioning fields
            # since the form was loaded.
            registry.kit_update(
                kit=obj, name=obj.name, description=obj.description, admin_email=obj.admin_email, public=obj.public
            )
            return
        # A new kit is registered like one from the API (which queues its provisioning); the
        # inlines then add its sensors and members to it.
        kit = registry.kit_register(
            id=obj.id or None,
            name=obj.name,
            description=obj.description,
            admin_email=obj.admin_email,
            public=obj.public,
        )
        obj.pk = kit.pk
        obj._state.adding = False

    @admin.display(description="failure reason")
    def failure_reason(self, kit):
        if kit.provisioning_status != ProvisioningStatus.FAILED:
            return ""
        return kit.provisioning_failure_reason

    @admin.display(description="certificate bundle")
    def certificate_bundle(self, kit):
        certificate = selectors.kit_certificate_current(kit=kit)
        if certificate is None:
            return "none yet: the kit has no active certificate"
        url = reverse("admin:kits_kit_bundle", args=[kit.pk])
        return format_html(
            '<a href="{}">Download the bundle</a> (certificate, private key, root CA, kit.toml).'
            " Each download is logged.",
            url,
        )

    # --- Actions: each asks a service, which queues the work for a worker. -------------------

    @admin.action(description="Retry failed provisioning of the selected kits", permissions=["change"])
    def retry_provisioning(self, request, queryset):
        self._for_each(request, queryset, provisioning.kit_provisioning_retry, "queued again")

    @admin.action(description="Rotate the certificate of the selected kits", permissions=["change"])
    def rotate_certificate(self, request, queryset):
        self._for_each(request, queryset, provisioning.kit_certificate_rotation_request, "queued for a new certificate")

    @admin.action(description="Decommission the selected kits (their data is kept)", permissions=["change"])
    def decommission(self, request, queryset):
        self._for_each(request, queryset, provisioning.kit_decommission_request, "queued for decommissioning")

    def _for_each(self, request, queryset, service, done_phrase: str) -> None:
        done = []
        for kit in queryset:
            try:
                service(kit_id=kit.id)
            except KitError as error:
                self.message_user(request, error.message, messages.WARNING)
            else:
                done.append(kit.id)
        if done:
            self.message_user(request, f"{len(done)} kit(s) {done_phrase}: {', '.join(done)}.", messages.SUCCESS)

    # --- The bundle download. ----------------------------------------------------------------

    def get_urls(self):
        download = self.admin_site.admin_view(self.bundle_download_view)
        return [path("<path:object_id>/bundle/", download, name="kits_kit_bundle"), *super().get_urls()]

    def bundle_download_view(self, request, object_id):
        """The kit's current bundle, as a zip. Needs the `kits.download_bundle` permission; every
        download is recorded (who, when, from where)."""
        if not request.user.has_perm("kits.download_bundle"):
            raise PermissionDenied
        kit = self.get_object(request, object_id)
        if kit is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        certificate = selectors.kit_certificate_current(kit=kit)
        if certificate is None:
            self.message_user(request, f"Kit '{kit.id}' has no active certificate yet.", messages.WARNING)
            return HttpResponseRedirect(reverse("admin:kits_kit_change", args=[kit.pk]))
        bundle = bundles.bundle_open(certificate.bundle_path)  # first: log only what can be sent
        provisioning.bundle_download_record(
            certificate=certificate, user=request.user, ip_address=request.META.get("REMOTE_ADDR")
        )
        response = FileResponse(
            bundle,
            as_attachment=True,
            filename=f"astroplant-{kit.id}-bundle.zip",
            content_type="application/zip",
        )
        response["Cache-Control"] = "no-store"
        return response


@admin.register(BundleDownload)
class BundleDownloadAdmin(admin.ModelAdmin):
    """The log of bundle downloads: read-only."""

    list_display = ["downloaded_at", "username", "kit", "certificate_id", "ip_address"]
    list_filter = [("downloaded_at", admin.DateFieldListFilter)]
    search_fields = ["username", "certificate__kit__id"]
    list_select_related = ["certificate"]

    @admin.display(description="kit")
    def kit(self, download):
        return download.certificate.kit_id

    @admin.display(description="certificate id")
    def certificate_id(self, download):
        return download.certificate.aws_certificate_id

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
