"""The grower dashboard's pages: the kits a person may see, one kit's charts, and its members.

Views stay thin: parse the input, call a selector or service, render. Who may see or manage a
kit is decided by `kits.selectors`, exactly as for the API; a kit the caller may not see is a 404.
The charts themselves are drawn in the browser (static/dashboard/kit.js) from the data API.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from kits import memberships, selectors
from kits.exceptions import KitInvalid, KitNotFound, MemberNotFound
from kits.models import Role

from . import dashboard_selectors
from .dashboard_forms import RANGE_PRESETS, ChartRangeForm, MemberAddForm, MemberRoleForm

# Kit cards per page, in each of "My kits" and the other kits: each page's latest values are
# read in one query, whatever its kits.
KITS_PER_PAGE = 24


def _kit_visible_or_404(user, kit_id: str):
    try:
        return selectors.kit_get_visible(user=user, kit_id=kit_id)
    except KitNotFound as error:
        raise Http404(error.message) from None


def _kit_to_manage(request, kit_id: str):
    """The kit, if the caller may manage its members: 404 if they may not see it, 403 otherwise."""
    kit = _kit_visible_or_404(request.user, kit_id)
    if not selectors.kit_can_manage(user=request.user, kit=kit):
        raise PermissionDenied("Only the kit's owners and staff manage its members.")
    return kit


@require_GET
def home(request):
    now = timezone.now()
    own_page = None
    if request.user.is_authenticated:
        own_page = _page_of(dashboard_selectors.kits_of_member(user=request.user), request.GET.get("my_page"))
    other_page = _page_of(dashboard_selectors.kits_others_visible(user=request.user), request.GET.get("page"))
    return render(
        request,
        "dashboard/home.html",
        {
            "own_kits": dashboard_selectors.kit_summaries(kits=list(own_page), now=now) if own_page is not None else [],
            "own_page": own_page,
            "other_kits": dashboard_selectors.kit_summaries(kits=list(other_page), now=now),
            "other_page": other_page,
            "online_within_minutes": settings.DASHBOARD_ONLINE_WITHIN_MINUTES,
        },
    )


def _page_of(kits, number):
    """One page of `kits`; a missing or bad page number gives the first page, one too high the last."""
    return Paginator(kits, KITS_PER_PAGE).get_page(number)


@require_GET
def kit_page(request, kit_id: str):
    kit = _kit_visible_or_404(request.user, kit_id)
    range_form = ChartRangeForm(request.GET if request.GET else None)
    summary = dashboard_selectors.kit_summary(kit=kit, now=timezone.now())
    chart_config = {
        "dataUrl": reverse("kit-detail", kwargs={"id": kit.id}) + "/data",
        "sensors": [{"key": s.key, "label": s.label, "unit": s.unit} for s in summary.sensors],
        # Charted like the sensors, on a fixed 0-100 % scale.
        "actuators": [{"key": a.key, "label": a.label, "unit": a.unit, "actuator": True} for a in summary.actuators],
        "range": range_form.chart_range(),
        "refreshSeconds": settings.DASHBOARD_REFRESH_SECONDS,
    }
    can_configure = selectors.kit_can_configure(user=request.user, kit=kit)
    configuration_config = {
        "configurationUrl": reverse("kit-configuration", kwargs={"id": kit.id}),
        "historyUrl": reverse("kit-configuration-history", kwargs={"id": kit.id}),
        "commandsUrl": reverse("kit-command-list", kwargs={"id": kit.id}),
        "canConfigure": can_configure,
        "timeZone": kit.time_zone,
        "sensors": [{"key": s.key, "label": s.label} for s in summary.sensors],
        "actuators": [{"key": a.key, "kind": a.kind, "dimmable": a.dimmable} for a in kit.actuators.all()],
    }
    return render(
        request,
        "dashboard/kit.html",
        {
            "can_configure": can_configure,
            "configuration_config": configuration_config,
            "summary": summary,
            "kit": kit,
            "range_form": range_form,
            "range_presets": RANGE_PRESETS,
            "chart_config": chart_config,
            "can_manage": selectors.kit_can_manage(user=request.user, kit=kit),
            "online_within_minutes": settings.DASHBOARD_ONLINE_WITHIN_MINUTES,
        },
    )


def _render_members(request, kit, *, add_form=None, status=200):
    return render(
        request,
        "dashboard/members.html",
        {
            "kit": kit,
            "memberships": selectors.memberships_of_kit(kit=kit),
            "add_form": add_form or MemberAddForm(),
            "roles": Role.choices,
        },
        status=status,
    )


@login_required
@require_GET
def kit_members(request, kit_id: str):
    return _render_members(request, _kit_to_manage(request, kit_id))


@login_required
@require_POST
def kit_member_add(request, kit_id: str):
    kit = _kit_to_manage(request, kit_id)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        role = form.cleaned_data["role"]
        try:
            username = selectors.member_username_resolve(username_or_email=form.cleaned_data["member"])
            memberships.membership_add(kit=kit, username=username, role=role)
        except KitInvalid as error:
            form.add_error("member", " ".join(m for msgs in error.field_errors.values() for m in msgs))
        else:
            messages.success(request, f"{username} is now a {Role(role).label.lower()} of {kit.name}.")
            return redirect("dashboard-kit-members", kit_id=kit.id)
    return _render_members(request, kit, add_form=form, status=400)


@login_required
@require_POST
def kit_member_change_role(request, kit_id: str, username: str):
    kit = _kit_to_manage(request, kit_id)
    form = MemberRoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Choose one of the roles for {username}.")
        return redirect("dashboard-kit-members", kit_id=kit.id)
    role = form.cleaned_data["role"]
    try:
        memberships.membership_change_role(kit=kit, username=username, role=role)
    except MemberNotFound as error:
        raise Http404(error.message) from None
    except KitInvalid as error:
        messages.error(request, _messages_of(error))
    else:
        messages.success(request, f"{username} is now a {Role(role).label.lower()} of {kit.name}.")
    return _back_after_member_change(request, kit)


@login_required
@require_POST
def kit_member_remove(request, kit_id: str, username: str):
    kit = _kit_to_manage(request, kit_id)
    try:
        memberships.membership_remove(kit=kit, username=username)
    except MemberNotFound as error:
        raise Http404(error.message) from None
    except KitInvalid as error:
        messages.error(request, _messages_of(error))
    else:
        messages.success(request, f"{username} no longer has access to {kit.name}.")
    return _back_after_member_change(request, kit)


def _back_after_member_change(request, kit):
    # An owner who stepped down or left may no longer manage, or even see, the kit.
    try:
        kit = selectors.kit_get_visible(user=request.user, kit_id=kit.id)  # fresh, with the caller's role
    except KitNotFound:
        return redirect("home")
    if selectors.kit_can_manage(user=request.user, kit=kit):
        return redirect("dashboard-kit-members", kit_id=kit.id)
    return redirect("dashboard-kit", kit_id=kit.id)


def _messages_of(error: KitInvalid) -> str:
    return " ".join(message for messages in error.field_errors.values() for message in messages)
