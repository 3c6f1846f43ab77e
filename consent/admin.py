"""Admin for privacy work: requests (intake, processing page, dashboard), consent, suppression."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from cdp.audit import audit_record
from consent.charts import open_requests_figure
from consent.deadlines import days_left
from consent.forms import AdminIntakeForm, ConsentEntryForm
from consent.models import (
    UNVERIFIED_STATUSES,
    Channel,
    ConsentRecord,
    ConsentSource,
    DataSubjectRequest,
    Purpose,
    RequestRun,
    RequestStatus,
    Restriction,
    Suppression,
)
from consent.selectors import privacy_dashboard, workspace_today
from consent.services.consent import ConsentError, consent_record
from consent.services.requests import (
    RequestError,
    request_complete,
    request_create,
    request_extend,
    request_mark_verified,
    request_reject,
    request_run,
    request_send_verification,
)
from consent.services.rights import RightError, request_subject


@admin.register(Purpose)
class PurposeAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "is_sale_or_sharing")
    search_fields = ("key", "name")


@admin.register(Channel)
class ChannelAdmin(admin.ModelAdmin):
    list_display = ("key", "name")


@admin.register(ConsentRecord)
class ConsentRecordAdmin(admin.ModelAdmin):
    """Append-only: records are added (by staff with evidence) and never changed or deleted."""

    list_display = (
        "id",
        "profile_id",
        "purpose",
        "channel",
        "status",
        "source",
        "captured_at",
        "conflict",
    )
    list_filter = ("status", "source", "purpose", "channel", "conflict")
    list_select_related = ("purpose", "channel")
    search_fields = ("=profile__id",)
    show_full_result_count = False
    date_hierarchy = "captured_at"
    readonly_fields = [f.name for f in ConsentRecord._meta.fields]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ConsentEntryForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            from profiles.services.resolution import profile_resolve_id

            data = form.cleaned_data
            profile = profile_resolve_id(data["profile_id"])
            if profile is None:
                form.add_error("profile_id", "No profile has this id.")
            else:
                try:
                    record = consent_record(
                        profile=profile,
                        purpose=data["purpose"],
                        channel=data["channel"],
                        status=data["status"],
                        source=ConsentSource.ADMIN,
                        lawful_basis=data["lawful_basis"],
                        captured_at=data["captured_at"],
                        evidence={"note": data["evidence_note"]} if data["evidence_note"] else {},
                        recorded_by=request.user,
                    )
                except ConsentError as exc:
                    form.add_error(None, str(exc))
                else:
                    self.log_addition(request, record, "Recorded consent")
                    messages.success(request, f"Recorded {record}.")
                    return HttpResponseRedirect(reverse("admin:consent_consentrecord_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "title": "Record a consent decision",
            "form": form,
            "purposes": Purpose.objects.all(),
            "channels": Channel.objects.all(),
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/consent/consent_entry.html", context)


class VerificationFilter(admin.SimpleListFilter):
    """Unverified requests are hidden unless asked for."""

    title = "verification"
    parameter_name = "verification"

    def lookups(self, request, model_admin):
        return [("unverified", "Unverified only"), ("all", "All")]

    def choices(self, changelist):
        yield {
            "selected": self.value() is None,
            "query_string": changelist.get_query_string(remove=[self.parameter_name]),
            "display": "Verified (default)",
        }
        for value, label in self.lookup_choices:
            yield {
                "selected": self.value() == value,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": label,
            }

    def queryset(self, request, queryset):
        if self.value() == "all":
            return queryset
        if self.value() == "unverified":
            return queryset.filter(verified_at__isnull=True)
        return queryset.filter(verified_at__isnull=False)


class OpenFilter(admin.SimpleListFilter):
    title = "open or closed"
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("closed", "Closed")]

    def queryset(self, request, queryset):
        closed = [RequestStatus.COMPLETED, RequestStatus.REJECTED]
        if self.value() == "open":
            return queryset.exclude(status__in=closed)
        if self.value() == "closed":
            return queryset.filter(status__in=closed)
        return queryset


@admin.register(DataSubjectRequest)
class DataSubjectRequestAdmin(admin.ModelAdmin):
    list_display = (
        "reference",
        "type",
        "regime",
        "status",
        "days_left_display",
        "due_date",
        "received_at",
        "duplicate_link",
    )
    list_filter = (VerificationFilter, OpenFilter, "status", "type", "regime")
    list_display_links = ("reference",)
    list_select_related = ("duplicate_of",)
    search_fields = ("=requester_hash", "=public_id")
    show_full_result_count = False
    change_list_template = "admin/consent/datasubjectrequest/change_list.html"

    def get_search_results(self, request, queryset, search_term):
        from cdp.normalize import InvalidValue, normalize_email
        from consent.hashing import identifier_hash

        term = search_term.strip()
        if "@" in term:
            try:
                return queryset.filter(
                    requester_hash=identifier_hash("email", normalize_email(term))
                ), False
            except InvalidValue:
                return queryset.none(), False
        if term.upper().startswith("DSR-") and term[4:].isdigit():
            return queryset.filter(pk=int(term[4:])), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description="Request", ordering="id")
    def reference(self, obj: DataSubjectRequest) -> str:
        return f"DSR-{obj.pk}"

    @admin.display(description="Days left", ordering="due_date")
    def days_left_display(self, obj: DataSubjectRequest) -> str:
        if not obj.is_open:
            return "—"
        left = days_left(obj.due_date, workspace_today())
        if left < 0:
            return format_html('<span class="cdp-flag">{} overdue</span>', -left)
        return str(left)

    @admin.display(description="Duplicate of")
    def duplicate_link(self, obj: DataSubjectRequest) -> str:
        if not obj.duplicate_of_id:
            return ""
        url = reverse("admin:consent_datasubjectrequest_change", args=[obj.duplicate_of_id])
        return format_html('<a href="{}">DSR-{}</a>', url, obj.duplicate_of_id)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("dashboard/", view(self.dashboard_view), name="consent_dashboard"),
            path(
                "<int:object_id>/runs/",
                view(self.runs_view),
                name="consent_datasubjectrequest_runs",
            ),
            path(
                "runs/<int:run_id>/download/",
                view(self.download_view),
                name="consent_requestrun_download",
            ),
            *super().get_urls(),
        ]

    # --- intake --------------------------------------------------------------------------

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = AdminIntakeForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            data = form.cleaned_data
            try:
                dsr = request_create(
                    type=data["type"],
                    regime=data["regime"],
                    requester_email=data["requester_email"],
                    requester_name=data["requester_name"],
                    identifiers=data["identifiers"],
                    details=data["details"],
                    corrections=data["corrections"],
                    purpose_keys=data["purpose_keys"],
                    received_at=data["received_at"],
                    created_by=request.user,
                    verify=data["verify"],
                    verification_method=data["verification_method"],
                    base_url=request.build_absolute_uri("/"),
                )
            except RequestError as exc:
                form.add_error(None, str(exc))
            else:
                self.log_addition(request, dsr, "Request received")
                messages.success(request, f"DSR-{dsr.pk} recorded; due {dsr.due_date}.")
                return HttpResponseRedirect(
                    reverse("admin:consent_datasubjectrequest_change", args=[dsr.pk])
                )
        context = {
            **self.admin_site.each_context(request),
            "title": "New data-subject request",
            "form": form,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/consent/request_intake.html", context)

    # --- the processing page -------------------------------------------------------------

    ACTIONS = {
        "send_verification": "Verification e-mail sent.",
        "mark_verified": "Marked as verified.",
        "run": "Started.",
        "extend": "Deadline extended.",
        "complete": "Request completed.",
        "reject": "Request rejected.",
    }

    def change_view(self, request, object_id, form_url="", extra_context=None):
        dsr = get_object_or_404(DataSubjectRequest, pk=object_id)
        if not self.has_view_or_change_permission(request, dsr):
            raise PermissionDenied
        if request.method == "POST":
            return self._act(request, dsr)
        return TemplateResponse(
            request, "admin/consent/request_process.html", self._context(request, dsr)
        )

    def _act(self, request, dsr: DataSubjectRequest):
        if not self.has_change_permission(request, dsr):
            raise PermissionDenied
        action = request.POST.get("action", "")
        note = request.POST.get("note", "")
        try:
            if action == "send_verification":
                request_send_verification(
                    request=dsr, actor=request.user, base_url=request.build_absolute_uri("/")
                )
            elif action == "mark_verified":
                request_mark_verified(request=dsr, actor=request.user, method=note)
            elif action == "run":
                request_run(request=dsr, actor=request.user)
            elif action == "extend":
                request_extend(request=dsr, actor=request.user, reason=note)
            elif action == "complete":
                request_complete(request=dsr, actor=request.user, note=note)
            elif action == "reject":
                request_reject(request=dsr, actor=request.user, reason=note)
            else:
                raise RequestError("Unknown action.")
        except (RequestError, RightError) as exc:
            messages.error(request, str(exc))
        else:
            self.log_change(request, dsr, f"{action}")
            messages.success(request, self.ACTIONS[action])
        return HttpResponseRedirect(request.path)

    def _context(self, request, dsr: DataSubjectRequest) -> dict:
        subject = request_subject(dsr) if dsr.is_open else None
        today = workspace_today()
        return {
            **self.admin_site.each_context(request),
            "title": f"DSR-{dsr.pk}: {dsr.get_type_display()} ({dsr.get_regime_display()})",
            "dsr": dsr,
            "opts": self.model._meta,
            "original": dsr,
            "days_left": days_left(dsr.due_date, today) if dsr.is_open else None,
            "subject": subject,
            "events": dsr.events.select_related("actor"),
            "duplicates": dsr.duplicates.all(),
            "runs": dsr.runs.all(),
            "can_change": self.has_change_permission(request, dsr),
            "can_download": request.user.has_perm("consent.download_requestrun"),
            "unverified": dsr.status in UNVERIFIED_STATUSES,
            "polling": dsr.runs.filter(
                status__in=[RequestRun.Status.QUEUED, RequestRun.Status.RUNNING]
            ).exists(),
        }

    def runs_view(self, request, object_id):
        dsr = get_object_or_404(DataSubjectRequest, pk=object_id)
        if not self.has_view_or_change_permission(request, dsr):
            raise PermissionDenied
        return TemplateResponse(
            request, "admin/consent/_request_runs.html", self._context(request, dsr)
        )

    def download_view(self, request, run_id):
        if not request.user.has_perm("consent.download_requestrun"):
            raise PermissionDenied
        run = get_object_or_404(RequestRun, pk=run_id, kind=RequestRun.Kind.EXPORT)
        if run.status != RequestRun.Status.SUCCEEDED or not run.file:
            raise Http404("This export has no archive.")
        audit_record(
            actor=request.user,
            action="dsr.export_download",
            target=run.request,
            details={"run": run.pk},
        )
        return FileResponse(
            run.file.open("rb"),
            as_attachment=True,
            filename=f"dsr-{run.request_id}-export.zip",
            content_type="application/zip",
        )

    # --- dashboard -----------------------------------------------------------------------

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        data = privacy_dashboard()
        context = {
            **self.admin_site.each_context(request),
            "title": "Privacy dashboard",
            "opts": self.model._meta,
            "data": data,
            "soonest": [(r, days_left(r.due_date, data["today"])) for r in data["soonest"]],
            "figure": open_requests_figure(data["by_type_regime"]),
            "suppressed_inputs": Suppression.objects.aggregate_hits(),
        }
        return TemplateResponse(request, "admin/consent/dashboard.html", context)


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("id", "id_type", "short_hash", "hits", "last_hit_at", "created_at")
    list_filter = ("id_type",)
    show_full_result_count = False
    readonly_fields = ("id_type", "key_hash", "request", "hits", "last_hit_at", "created_at")

    @admin.display(description="Salted hash")
    def short_hash(self, obj):
        return f"{obj.key_hash[:16]}…"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Restriction)
class RestrictionAdmin(admin.ModelAdmin):
    """Deleting a restriction lifts it."""

    list_display = ("profile_id", "request", "created_at")
    raw_id_fields = ("profile", "request")
    show_full_result_count = False

    def has_add_permission(self, request):
        return False
