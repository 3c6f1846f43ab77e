"""Admin for activation: destinations, activations (with their overview page), runs, batches."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import FileResponse, Http404, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from activation.models import (
    Activation,
    ActivationRun,
    DeliveryBatch,
    Destination,
    attribute_problems,
)
from activation.selectors import activation_overview
from activation.services.files import resolve_export
from activation.services.runs import ActivationError, activation_run_create, activation_run_retry
from profiles.constants import CANONICAL_ATTRIBUTES

CSS = {"all": ("cdp/admin.css",)}


def progress_bar(percent: int) -> str:
    return format_html(
        '<div class="cdp-progress" title="{}%"><span style="width:{}%"></span></div>',
        percent,
        percent,
    )


@admin.register(Destination)
class DestinationAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "kind",
        "file_format",
        "url",
        "consent_purpose",
        "consent_channel",
        "is_sale_or_sharing",
        "is_active",
    )
    list_filter = ("kind", "is_sale_or_sharing", "is_active")
    search_fields = ("name",)
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    fieldsets = (
        (None, {"fields": ("name", "kind", "is_active")}),
        ("Consent", {"fields": ("consent_purpose", "consent_channel", "is_sale_or_sharing")}),
        ("File export", {"fields": ("file_format", "folder")}),
        (
            "Webhook",
            {"fields": ("url", "batch_size", "timeout_seconds", "max_attempts", "backoff_seconds")},
        ),
    )

    class Media:
        css = CSS

    def get_fieldsets(self, request, obj=None):
        fieldsets = list(super().get_fieldsets(request, obj))
        if obj is not None and self.has_change_permission(request, obj):
            # The signing secret is shown only to those who may configure the destination.
            fieldsets.append(("Signing secret", {"fields": ("secret",)}))
        return fieldsets

    def get_readonly_fields(self, request, obj=None):
        return ("secret",) if obj is not None else ()


class ActivationForm(forms.ModelForm):
    standard_attributes = forms.MultipleChoiceField(
        choices=[(a.name, a.label) for a in CANONICAL_ATTRIBUTES.values()],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Sent for every person, besides the pseudonymous id and the contact point.",
    )
    custom_attributes = forms.CharField(
        required=False,
        help_text="More profile attributes by name, comma-separated (e.g. postcode); "
        "custom traits and insights are not sent.",
    )

    class Meta:
        model = Activation
        fields = (
            "name",
            "segment",
            "destination",
            "contact_point",
            "schedule",
            "mode",
            "is_active",
        )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = list(self.instance.attributes or []) if self.instance.pk else []
        self.initial["standard_attributes"] = [a for a in current if a in CANONICAL_ATTRIBUTES]
        self.initial["custom_attributes"] = ", ".join(
            a for a in current if a not in CANONICAL_ATTRIBUTES
        )

    def clean(self):
        cleaned = super().clean()
        custom = [
            a.strip() for a in (cleaned.get("custom_attributes") or "").split(",") if a.strip()
        ]
        problems = attribute_problems(custom)
        if problems:
            self.add_error("custom_attributes", problems)
            # The model's own check (same rule) would name ``attributes``, which this form
            # shows as two fields: the form is invalid already, nothing is saved.
            self.instance.attributes = []
            return cleaned
        self.instance.attributes = list(
            dict.fromkeys([*(cleaned.get("standard_attributes") or []), *custom])
        )
        return cleaned


@admin.register(Activation)
class ActivationAdmin(admin.ModelAdmin):
    form = ActivationForm
    list_display = (
        "name",
        "segment",
        "destination",
        "mode",
        "schedule",
        "is_active",
        "overview_link",
    )
    list_filter = ("mode", "schedule", "is_active", "destination")
    list_select_related = ("segment", "destination")
    search_fields = ("name",)

    class Media:
        css = CSS

    def get_urls(self):
        overview = path(
            "<int:object_id>/overview/",
            self.admin_site.admin_view(self.overview_view),
            name="activation_activation_overview",
        )
        return [overview, *super().get_urls()]

    @admin.display(description="Overview")
    def overview_link(self, obj: Activation) -> str:
        url = reverse("admin:activation_activation_overview", args=[obj.pk])
        return format_html('<a href="{}">Expected count, runs</a>', url)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def overview_view(self, request, object_id: int):
        """Expected count and exclusions before a run, the run history, and "Run now"."""
        activation = get_object_or_404(
            Activation.objects.select_related("destination"), pk=object_id
        )
        if not self.has_view_permission(request, activation):
            raise PermissionDenied
        if request.method == "POST":
            if not self.has_change_permission(request, activation):
                raise PermissionDenied
            try:
                run = activation_run_create(activation=activation, created_by=request.user)
            except ActivationError as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.log_change(request, activation, f"Queued run {run.pk}")
                self.message_user(request, f"Run #{run.pk} queued.", messages.SUCCESS)
            return HttpResponseRedirect(request.path)
        context = {
            **self.admin_site.each_context(request),
            **activation_overview(activation=activation),
            "opts": self.opts,
            "title": f"Activation: {activation.name}",
            "activation": activation,
            "can_run": self.has_change_permission(request, activation),
        }
        return TemplateResponse(request, "activation/overview.html", context)


class DeliveryBatchInline(admin.TabularInline):
    model = DeliveryBatch
    fields = ("number", "size", "status", "attempts", "response_status", "last_error", "sent_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(ActivationRun)
class ActivationRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "activation",
        "status",
        "progress",
        "mode",
        "trigger",
        "members_count",
        "eligible_count",
        "sent_count",
        "added_count",
        "updated_count",
        "removed_count",
        "created_at",
        "duration",
    )
    list_filter = ("status", "mode", "trigger", "activation")
    list_select_related = ("activation",)
    show_full_result_count = False
    date_hierarchy = "created_at"
    actions = ("retry_selected",)
    inlines = [DeliveryBatchInline]
    readonly_fields = (
        "activation",
        "status",
        "progress",
        "mode",
        "trigger",
        "attempts",
        "members_count",
        "eligible_count",
        "excluded",
        "added_count",
        "updated_count",
        "removed_count",
        "sent_count",
        "items_done",
        "items_total",
        "timings",
        "download",
        "error",
        "created_by",
        "created_at",
        "started_at",
        "finished_at",
    )
    exclude = ("file", "staged", "public_id")

    class Media:
        css = CSS

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Progress")
    def progress(self, obj: ActivationRun) -> str:
        return progress_bar(obj.progress_percent)

    @admin.display(description="Duration (s)")
    def duration(self, obj: ActivationRun):
        seconds = obj.duration_seconds
        return "" if seconds is None else f"{seconds:.1f}"

    @admin.display(description="File")
    def download(self, obj: ActivationRun) -> str:
        if not obj.file:
            return "—"
        url = reverse("admin:activation_activationrun_download", args=[obj.pk])
        return format_html('<a href="{}">{}</a>', url, obj.file)

    def get_urls(self):
        download = path(
            "<int:object_id>/download/",
            self.admin_site.admin_view(self.download_view),
            name="activation_activationrun_download",
        )
        return [download, *super().get_urls()]

    def download_view(self, request, object_id: int):
        """The export file of a run, for those who may view runs (it holds personal data)."""
        run = get_object_or_404(ActivationRun, pk=object_id)
        if not self.has_view_permission(request, run):
            raise PermissionDenied
        file_path = resolve_export(run.file) if run.file else None
        if file_path is None:
            raise Http404("This run has no file, or it has been removed from the export storage.")
        return FileResponse(open(file_path, "rb"), as_attachment=True, filename=file_path.name)

    @admin.action(description="Retry selected failed runs (batches already sent are skipped)")
    def retry_selected(self, request, queryset):
        if not request.user.has_perm("activation.change_activation"):
            raise PermissionDenied
        done = 0
        for run in queryset.select_related("activation"):
            try:
                activation_run_retry(run=run, user=request.user)
            except ActivationError as exc:
                self.message_user(request, f"Run #{run.pk}: {exc}", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} run(s) queued again.", messages.SUCCESS)


@admin.register(DeliveryBatch)
class DeliveryBatchAdmin(admin.ModelAdmin):
    """Webhook batches; the ``dead`` filter is the dead-letter queue."""

    list_display = (
        "run",
        "number",
        "size",
        "status",
        "attempts",
        "response_status",
        "last_error",
        "updated_at",
    )
    list_filter = ("status",)
    list_select_related = ("run",)
    show_full_result_count = False
    readonly_fields = [f.name for f in DeliveryBatch._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
