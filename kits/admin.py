"""Where admins register and manage kits. Saving, deleting, the members and actuators inlines and
every action go through the services, like the API, and meet the same rules with the same words;
the certificate bundle is downloaded here, by staff allowed to, and each download is logged."""

import zoneinfo

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import model_ngettext
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.http import FileResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext, gettext_lazy

from astroplant_site.client_address import client_address

from . import bundles, memberships, provisioning, registry, selectors
from .exceptions import KitError, KitInvalid
from .models import Actuator, BundleDownload, Kit, KitCertificate, Membership, ProvisioningStatus, Role, Sensor

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


class ActuatorFormSet(BaseInlineFormSet):
    """The actuators inline. Saved through registry.kit_actuators_replace (KitAdmin.save_formset).
    Its keys are checked against the keys the sensors inline on the same page would leave, so a
    clash comes back as a form error with nothing saved. `sibling_formsets` is set by KitAdmin."""

    sibling_formsets: list = ()

    def clean(self):
        super().clean()
        if any(self.errors):
            return
        sensors = next((f for f in self.sibling_formsets if f.model is Sensor), None)
        if sensors is None or not sensors.is_valid():
            return  # the sensors inline shows its own errors first
        sensor_keys = set(_keys_kept(sensors))
        clashes = sorted(key for key in _keys_kept(self) if key in sensor_keys)
        if clashes:
            raise ValidationError(
                f"{', '.join(clashes)}: already the key of a sensor of this kit. "
                "A key names a sensor or an actuator, not both: rename one of them."
            )


def _keys_kept(formset) -> list[str]:
    """The keys a valid inline formset would leave: its rows, less those marked for deletion and
    untouched extra rows."""
    kept = []
    for form in formset.forms:
        data = form.cleaned_data
        if not data or data.get("DELETE") or (form.instance.pk is None and not form.has_changed()):
            continue
        kept.append(data["key"])
    return kept


def actuator_edits_save(formset: ActuatorFormSet) -> None:
    """Carry out the actuators inline's edits through the registry, as one replacement of the
    kit's actuators. Records them on the formset as its own save() would, for the change history."""
    kit = formset.instance
    kept, changed_keys, deleted = [], {}, []
    for form in formset.forms:
        data = form.cleaned_data
        if not data or (form.instance.pk is None and not form.has_changed()):
            continue
        if data.get("DELETE"):
            if form.instance.pk is not None:
                deleted.append(form.instance)
            continue
        kept.append(registry.ActuatorSpec(key=data["key"], kind=data["kind"], dimmable=data["dimmable"]))
        if form.instance.pk is None or form.has_changed():
            changed_keys[data["key"]] = (form.instance.pk is None, form.changed_data)
    rows = {row.key: row for row in registry.kit_actuators_replace(kit=kit, actuators=kept)}
    formset.new_objects = [rows[key] for key, (new, _) in changed_keys.items() if new]
    formset.changed_objects = [(rows[key], fields) for key, (new, fields) in changed_keys.items() if not new]
    formset.deleted_objects = deleted


class ActuatorInline(admin.TabularInline):
    model = Actuator
    formset = ActuatorFormSet
    extra = 1


def time_zone_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in sorted(zoneinfo.available_timezones())]


class MembershipFormSet(BaseInlineFormSet):
    """The members inline. Saved through the membership services (KitAdmin.save_formset); tried
    against them first, in a transaction rolled back, so that a refusal (the last owner removed or
    demoted, an inactive user) comes back on the page with the admin's edits and nothing saved."""

    def clean(self):
        super().clean()
        if any(self.errors) or self.instance._state.adding:  # a kit being registered has no owner to lose
            return
        try:
            with transaction.atomic():
                membership_edits_save(self)
                raise _TrialRun
        except _TrialRun:
            pass
        except KitError as error:
            raise ValidationError(_in_words(error)) from None


class _TrialRun(Exception):
    """Rolls back the trial run of the members inline's edits."""


def membership_edits_save(formset: MembershipFormSet) -> None:
    """Carry out the members inline's edits through the membership services, in an order that
    never leaves the kit without an owner on the way: additions first, then role changes
    (promotions before demotions), then removals. Records them on the formset as its own save()
    would, for the admin's change history."""
    kit = formset.instance
    saved = {membership.pk: membership for membership in selectors.memberships_of_kit(kit=kit)}
    additions, role_changes, removals = [], [], []
    for form in formset.forms:
        membership = saved.get(form.instance.pk)
        if membership is None:  # a new row; an untouched extra row has no data
            if form.has_changed() and not form.cleaned_data.get("DELETE"):
                additions.append((form.cleaned_data["user"].get_username(), form.cleaned_data["role"]))
            continue
        if form.cleaned_data.get("DELETE"):
            removals.append(membership)
            continue
        user, role = form.cleaned_data["user"], form.cleaned_data["role"]
        if user.pk != membership.user_id:  # the row now names someone else
            additions.append((user.get_username(), role))
            removals.append(membership)
        elif role != membership.role:
            role_changes.append((user.get_username(), role))
    role_changes.sort(key=lambda change: change[1] != Role.OWNER)
    formset.new_objects = [
        memberships.membership_add(kit=kit, username=username, role=role) for username, role in additions
    ]
    formset.changed_objects = [
        (memberships.membership_change_role(kit=kit, username=username, role=role), ["role"])
        for username, role in role_changes
    ]
    for membership in removals:
        memberships.membership_remove(kit=kit, username=membership.user.get_username())
    formset.deleted_objects = removals


def _in_words(error: KitError) -> str:
    if isinstance(error, KitInvalid):
        return " ".join(message for messages_ in error.field_errors.values() for message in messages_)
    return error.message


class MembershipInline(admin.TabularInline):
    model = Membership
    formset = MembershipFormSet
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
    inlines = [SensorInline, ActuatorInline, MembershipInline, KitCertificateInline]
    actions = ["delete_selected", "retry_provisioning", "rotate_certificate", "decommission"]

    def get_fieldsets(self, request, obj=None):
        kit = (None, {"fields": ["id", "name", "description", "admin_email", "public", "time_zone"]})
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
        return self.inlines if obj is not None else [SensorInline, ActuatorInline, MembershipInline]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "time_zone":
            kwargs["widget"] = forms.Select(choices=time_zone_choices())
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def _create_formsets(self, request, obj, change):
        # The actuators inline checks its keys against the sensors inline's (ActuatorFormSet.clean),
        # so each formset is told the others of the page. (A private hook of ModelAdmin: the one
        # place where all of a page's formsets exist before they are validated.)
        formsets, inline_instances = super()._create_formsets(request, obj, change)
        for formset in formsets:
            formset.sibling_formsets = formsets
        return formsets, inline_instances

    def save_model(self, request, obj, form, change):
        if change:
            # Only the fields of the form: a worker may have changed the provisioning fields
            # since the form was loaded.
            registry.kit_update(
                kit=obj,
                name=obj.name,
                description=obj.description,
                admin_email=obj.admin_email,
                public=obj.public,
                time_zone=obj.time_zone,
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
            time_zone=obj.time_zone,
        )
        obj.pk = kit.pk
        obj._state.adding = False

    def save_formset(self, request, form, formset, change):
        if formset.model is Membership:
            membership_edits_save(formset)
        elif formset.model is Actuator:
            actuator_edits_save(formset)
        else:
            super().save_formset(request, form, formset, change)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except KitError as error:
            # A service refused while saving (say another admin removed an owner since the check):
            # the whole save is rolled back.
            self.message_user(request, _in_words(error), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    # --- Deleting: through kit_delete, which refuses a kit still live on AWS IoT or held by a worker.

    def delete_model(self, request, obj):
        registry.kit_delete(kit=obj)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except KitError as error:  # refused: the deletion and its log entry are rolled back
            self.message_user(request, error.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:kits_kit_change", args=[object_id]))

    @admin.action(description=gettext_lazy("Delete selected %(verbose_name_plural)s"), permissions=["delete"])
    def delete_selected(self, request, queryset):
        """Django's own action, its confirmation page included, except that each kit is deleted by
        kit_delete: a kit it refuses stays, with the reason shown, and the others are deleted."""
        *_, perms_needed, protected = self.get_deleted_objects(queryset, request)
        if not request.POST.get("post") or perms_needed or protected:
            return django_delete_selected(self, request, queryset)  # the confirmation, or Django's refusal
        deleted = 0
        for kit in queryset:
            try:
                with transaction.atomic():
                    self.log_deletions(request, [kit])
                    registry.kit_delete(kit=kit)
            except KitError as error:
                self.message_user(request, error.message, messages.ERROR)
            else:
                deleted += 1
        if deleted:
            self.message_user(
                request,
                gettext("Successfully deleted %(count)d %(items)s.")
                % {"count": deleted, "items": model_ngettext(self.opts, deleted)},
                messages.SUCCESS,
            )

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
            certificate=certificate, user=request.user, ip_address=client_address(request) or None
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
