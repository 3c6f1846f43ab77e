"""Admin pages of insights: dashboards and the profile 360 page (thin: selectors do the work).

They are mounted by ProfileInsightAdmin.get_urls, render in admin/base_site.html with the admin
site's context, and check permissions themselves.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from insights.models import InsightRun
from insights.selectors import DASHBOARDS, dashboard_get, profile_360_get
from insights.services.runs import insight_run_create
from profiles.selectors import profile_parts
from profiles.services.resolution import profile_resolve_id

DASHBOARD_PERMISSION = "insights.view_profileinsight"
PROFILE_PERMISSION = "profiles.view_profile"


def dashboard_view(request, admin_site, slug: str = "overview"):
    if not request.user.has_perm(DASHBOARD_PERMISSION):
        raise PermissionDenied
    if slug not in DASHBOARDS:
        raise Http404("No such dashboard.")
    board = dashboard_get(slug=slug)
    context = {
        **admin_site.each_context(request),
        "title": f"Dashboard: {board.title}",
        "board": board,
        "dashboards": DASHBOARDS.items(),
        "charts": [(f"chart-{i}", f"chart-{i}-data", fig) for i, fig in enumerate(board.charts)],
        "can_refresh": request.user.has_perm("insights.add_insightrun"),
    }
    return TemplateResponse(request, "insights/dashboard.html", context)


@require_POST
def dashboard_refresh_view(request, admin_site):
    if not request.user.has_perm("insights.add_insightrun"):
        raise PermissionDenied
    run = insight_run_create(kind=InsightRun.Kind.FULL, requested_by=request.user)
    messages.success(
        request, f"Insight run #{run.pk} is queued; the dashboards update when it ends."
    )
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("admin:insights_dashboard")
    return HttpResponseRedirect(target)


def profile_360_view(request, admin_site, profile_id: int):
    if not request.user.has_perm(PROFILE_PERMISSION):
        raise PermissionDenied
    profile = profile_resolve_id(profile_id)
    if profile is None:
        raise Http404("No such profile.")
    if profile.pk != profile_id:  # merged away: show the person it became
        return redirect("admin:insights_profile_360", profile_id=profile.pk)
    page = request.GET.get("page", "")
    view = profile_360_get(
        profile=profile,
        page=int(page) if page.isdigit() else 1,
        parts=profile_parts(request.user),
    )
    context = {
        **admin_site.each_context(request),
        "title": f"Profile 360: {profile}",
        "view": view,
        "profile": profile,
        "opts": profile._meta,
    }
    return TemplateResponse(request, "insights/profile_360.html", context)
