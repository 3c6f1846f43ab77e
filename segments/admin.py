"""Admin for segments: list, the builder, the segment page (size chart, changes), why page."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.http import HttpResponseRedirect
from django.urls import path, reverse

from segments import starters, views
from segments.models import Segment, SegmentMembershipChange, SegmentRefresh
from segments.services import SegmentError, segment_description_clean, segment_name_clean


class SegmentForm(forms.ModelForm):
    """The segment page's form: its name follows the same rule as the API and the builder."""

    class Meta:
        model = Segment
        fields = ["name", "description", "scheduled"]

    def clean_name(self) -> str:
        try:
            return segment_name_clean(self.cleaned_data.get("name", ""))
        except SegmentError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean_description(self) -> str:
        try:
            return segment_description_clean(self.cleaned_data.get("description", ""))
        except SegmentError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Segment)
class SegmentAdmin(admin.ModelAdmin):
    form = SegmentForm
    list_display = ("name", "size", "refreshed_at", "scheduled", "updated_at")
    list_filter = ("scheduled",)
    search_fields = ("name", "description")
    fields = ("name", "description", "scheduled", "size", "refreshed_at", "created_by")
    readonly_fields = ("size", "refreshed_at", "created_by")
    change_form_template = "segments/admin/segment_change_form.html"
    change_list_template = "segments/admin/segment_change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        urls = [
            path("builder/", view(views.builder), name="segments_builder"),
            path("builder/tree/", view(views.builder_tree), name="segments_builder_tree"),
            path("builder/counts/", view(views.builder_counts), name="segments_builder_counts"),
            path("builder/values/", view(views.builder_values), name="segments_builder_values"),
            path("builder/save/", view(views.builder_save), name="segments_builder_save"),
            path("<int:segment_id>/builder/", view(views.builder), name="segments_builder_edit"),
            path("<int:segment_id>/why/", view(views.segment_why), name="segments_why"),
            path("<int:segment_id>/refresh/", view(views.segment_refresh), name="segments_refresh"),
        ]
        return [*urls, *super().get_urls()]

    def add_view(self, request, form_url="", extra_context=None):
        return HttpResponseRedirect(reverse("admin:segments_builder"))

    def changelist_view(self, request, extra_context=None):
        extra = {**(extra_context or {}), "starters": starters.STARTERS}
        return super().changelist_view(request, extra)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        segment = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if segment is not None:
            extra.update(views.segment_page_context(segment))
        return super().change_view(request, object_id, form_url, extra)


@admin.register(SegmentRefresh)
class SegmentRefreshAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "segment",
        "status",
        "size",
        "entered_count",
        "left_count",
        "created_at",
        "finished_at",
    )
    list_filter = ("status",)
    list_select_related = ("segment",)
    show_full_result_count = False
    readonly_fields = [f.name for f in SegmentRefresh._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(SegmentMembershipChange)
class SegmentMembershipChangeAdmin(admin.ModelAdmin):
    list_display = ("at", "segment", "profile", "kind")
    list_filter = ("kind", "segment")
    list_select_related = ("segment", "profile")
    raw_id_fields = ("profile", "refresh")
    show_full_result_count = False
    readonly_fields = ("refresh", "segment", "profile", "kind", "at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
