"""Admin for insights: custom insight definitions, runs, the materialised table, and the
dashboard and profile 360 pages (mounted under the ProfileInsight admin)."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html

from insights import views
from insights.models import CustomInsight, CustomInsightFilter, InsightRun, ProfileInsight
from insights.services.expressions import PropertyNameError, property_path
from insights.services.runs import insight_run_create


class CustomInsightFilterForm(forms.ModelForm):
    class Meta:
        model = CustomInsightFilter
        fields = ("property", "operator", "value")

    def clean(self):
        data = super().clean()
        try:
            property_path(data.get("property") or "")
        except PropertyNameError as exc:
            self.add_error("property", str(exc))
        operator = data.get("operator")
        ops = CustomInsightFilter.Operator
        if operator in (ops.GREATER, ops.LESS):
            try:
                float(data.get("value") or "")
            except ValueError:
                self.add_error("value", "A number is needed for this operator.")
        elif operator != ops.IS_SET and not data.get("value"):
            self.add_error("value", "A value is needed for this operator.")
        return data


class CustomInsightFilterInline(admin.TabularInline):
    model = CustomInsightFilter
    form = CustomInsightFilterForm
    extra = 1


class CustomInsightForm(forms.ModelForm):
    class Meta:
        model = CustomInsight
        fields = ("name", "key", "aggregate", "event_name", "property", "window_days", "is_active")

    def clean(self):
        data = super().clean()
        needs_property = data.get("aggregate") not in (None, CustomInsight.Aggregate.COUNT)
        if needs_property and not data.get("property"):
            self.add_error("property", "Sum, average, minimum and maximum need a property.")
        if data.get("property"):
            try:
                property_path(data["property"])
            except PropertyNameError as exc:
                self.add_error("property", str(exc))
        return data


@admin.register(CustomInsight)
class CustomInsightAdmin(admin.ModelAdmin):
    form = CustomInsightForm
    list_display = (
        "name",
        "key",
        "aggregate",
        "event_name",
        "property",
        "window_days",
        "is_active",
    )
    list_filter = ("aggregate", "is_active")
    search_fields = ("name", "key", "event_name")
    prepopulated_fields = {"key": ("name",)}
    inlines = [CustomInsightFilterInline]

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(InsightRun)
class InsightRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "kind",
        "status",
        "progress",
        "profiles_done",
        "created_at",
        "finished_at",
    )
    list_filter = ("kind", "status")
    fields = ("kind",)
    readonly_fields = (
        "kind",
        "status",
        "progress",
        "profiles_total",
        "profiles_done",
        "rfm_cuts",
        "clv_params",
        "last_event_id",
        "error",
        "requested_by",
        "created_at",
        "started_at",
        "finished_at",
    )

    def get_fields(self, request, obj=None):
        return ("kind",) if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        # The service creates the run (and skips a duplicate queued one); adopt its row.
        run = insight_run_create(kind=form.cleaned_data["kind"], requested_by=request.user)
        obj.pk = run.pk

    @admin.display(description="Progress")
    def progress(self, obj: InsightRun) -> str:
        return format_html(
            '<div class="cdp-progress" title="{}%"><span style="width:{}%"></span></div>',
            obj.progress_percent,
            obj.progress_percent,
        )


@admin.register(ProfileInsight)
class ProfileInsightAdmin(admin.ModelAdmin):
    list_display = (
        "profile_id",
        "order_count",
        "revenue",
        "rfm_group",
        "predicted_clv",
        "engagement_score",
        "view_360",
        "computed_at",
    )
    list_filter = ("rfm_group",)
    search_fields = ("=profile__id",)
    ordering = ("-profile_id",)
    show_full_result_count = False
    readonly_fields = [f.name for f in ProfileInsight._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="360")
    def view_360(self, obj: ProfileInsight) -> str:
        url = reverse("admin:insights_profile_360", args=[obj.profile_id])
        return format_html('<a href="{}">360 view</a>', url)

    def get_urls(self):
        site = self.admin_site
        return [
            path(
                "dashboards/",
                site.admin_view(lambda r: views.dashboard_view(r, site)),
                name="insights_dashboard",
            ),
            path(
                "dashboards/refresh/",
                site.admin_view(lambda r: views.dashboard_refresh_view(r, site)),
                name="insights_dashboard_refresh",
            ),
            path(
                "dashboards/<slug:slug>/",
                site.admin_view(lambda r, slug: views.dashboard_view(r, site, slug)),
                name="insights_dashboard",
            ),
            path(
                "profile/<int:profile_id>/",
                site.admin_view(lambda r, profile_id: views.profile_360_view(r, site, profile_id)),
                name="insights_profile_360",
            ),
            *super().get_urls(),
        ]
