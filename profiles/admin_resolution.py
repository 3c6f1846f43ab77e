"""Admin for identity resolution: rulesets, runs, the steward's review queue, merges and undo."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from profiles.matching import FIELDS
from profiles.models import (
    DoNotMerge,
    MatchCriterion,
    MatchRule,
    MergeLog,
    MergeSuggestion,
    Profile,
    ResolutionRun,
    Ruleset,
)
from profiles.selectors import merge_suggestion_sides
from profiles.services.merging import MergeError, profile_unmerge
from profiles.services.resolution import report_lines, resolution_run_create
from profiles.services.suggestions import (
    merge_suggestion_accept,
    merge_suggestion_reject,
    merge_suggestion_skip,
    merge_suggestions_accept_above,
)


class MatchCriterionInline(admin.TabularInline):
    model = MatchCriterion
    extra = 1


@admin.register(MatchRule)
class MatchRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "ruleset", "position", "is_enabled")
    list_filter = ("ruleset",)
    inlines = [MatchCriterionInline]


class MatchRuleInline(admin.TabularInline):
    model = MatchRule
    extra = 0
    fields = ("name", "position", "is_enabled", "criteria_summary")
    readonly_fields = ("criteria_summary",)
    show_change_link = True

    @admin.display(description="Criteria (AND)")
    def criteria_summary(self, obj: MatchRule) -> str:
        return " AND ".join(
            f"{c.field} {c.get_method_display()}"
            + (" (blank=blank)" if c.blank_matches_blank else "")
            for c in obj.criteria.all()
        )


@admin.register(Ruleset)
class RulesetAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "is_active",
        "auto_threshold",
        "typo_threshold",
        "review_threshold",
        "updated_at",
    )
    inlines = [MatchRuleInline]
    actions = ("dry_run", "run_now")

    @admin.action(description="Dry run: report what this ruleset would do", permissions=["change"])
    def dry_run(self, request, queryset):
        for ruleset in queryset:
            run = resolution_run_create(ruleset=ruleset, dry_run=True, actor=request.user)
            self.message_user(request, f"Dry run #{run.pk} of {ruleset.name} queued.")

    @admin.action(description="Run resolution with this ruleset", permissions=["change"])
    def run_now(self, request, queryset):
        for ruleset in queryset:
            run = resolution_run_create(ruleset=ruleset, actor=request.user)
            self.message_user(request, f"Resolution run #{run.pk} of {ruleset.name} queued.")


@admin.register(ResolutionRun)
class ResolutionRunAdmin(admin.ModelAdmin):
    list_display = ("id", "ruleset", "dry_run", "status", "progress", "step", "created_at")
    list_filter = ("status", "dry_run")
    list_select_related = ("ruleset",)
    readonly_fields = (
        "ruleset", "dry_run", "status", "progress", "step", "report_text", "error",
        "created_by", "created_at", "started_at", "finished_at",
    )  # fmt: skip
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Progress")
    def progress(self, obj: ResolutionRun) -> str:
        return format_html(
            '<div class="cdp-progress" title="{}%"><span style="width:{}%"></span></div>',
            obj.progress_percent,
            obj.progress_percent,
        )

    @admin.display(description="Report")
    def report_text(self, obj: ResolutionRun) -> str:
        return format_html("<pre>{}</pre>", "\n".join(report_lines(obj.report or {})))


class BulkAcceptForm(forms.Form):
    min_score = forms.FloatField(label="Accept every pending suggestion scoring at least")


@admin.register(MergeSuggestion)
class MergeSuggestionAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "review_link",
        "left_id",
        "right_id",
        "score",
        "rule",
        "status",
        "created_at",
    )
    list_filter = ("status",)
    show_full_result_count = False
    ordering = ("-score", "created_at")
    readonly_fields = [f.name for f in MergeSuggestion._meta.fields]

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<int:object_id>/review/",
                view(self.review_view),
                name="profiles_mergesuggestion_review",
            ),
            path("next/", view(self.next_view), name="profiles_mergesuggestion_next"),
            path("bulk-accept/", view(self.bulk_accept_view), name="profiles_mergesuggestion_bulk"),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        bulk_form = BulkAcceptForm() if self.has_change_permission(request) else None
        extra_context = {**(extra_context or {}), "bulk_form": bulk_form}
        return super().changelist_view(request, extra_context)

    @admin.display(description="Review")
    def review_link(self, obj: MergeSuggestion) -> str:
        url = reverse("admin:profiles_mergesuggestion_review", args=[obj.pk])
        return format_html('<a href="{}">review</a>', url)

    def _check(self, request, obj=None):
        if not self.has_change_permission(request, obj):
            raise PermissionDenied

    def _check_view(self, request):
        """The review pages show both people's personal data: only for those who may view."""
        if not self.has_view_permission(request):
            raise PermissionDenied

    def next_view(self, request):
        self._check_view(request)
        pending = MergeSuggestion.objects.filter(status=MergeSuggestion.Status.PENDING)
        nxt = pending.order_by("-score", "created_at").values_list("pk", flat=True).first()
        if nxt is None:
            self.message_user(request, "The review queue is empty.")
            return HttpResponseRedirect(reverse("admin:profiles_mergesuggestion_changelist"))
        return HttpResponseRedirect(reverse("admin:profiles_mergesuggestion_review", args=[nxt]))

    def bulk_accept_view(self, request):
        self._check(request)
        form = BulkAcceptForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            accepted, errors = merge_suggestions_accept_above(
                min_score=form.cleaned_data["min_score"], actor=request.user
            )
            self.message_user(request, f"Accepted {accepted} suggestions.")
            for error in errors[:20]:
                self.message_user(request, error, messages.WARNING)
        elif request.method == "POST":
            self.message_user(request, "Give a score to accept above.", messages.ERROR)
        return HttpResponseRedirect(reverse("admin:profiles_mergesuggestion_changelist"))

    def review_view(self, request, object_id: int):
        self._check_view(request)
        suggestion = get_object_or_404(MergeSuggestion, pk=object_id)
        if request.method == "POST":
            self._check(request, suggestion)
            decision = request.POST.get("decision")
            actions = {
                "accept": merge_suggestion_accept,
                "reject": merge_suggestion_reject,
                "skip": merge_suggestion_skip,
            }
            if decision not in actions:
                self.message_user(request, "Choose accept, reject or skip.", messages.ERROR)
            else:
                try:
                    result = actions[decision](suggestion=suggestion, actor=request.user)
                except MergeError as exc:
                    self.message_user(request, str(exc), messages.WARNING)
                else:
                    self.log_change(request, suggestion, f"Suggestion {decision}ed")
                    if decision == "accept":
                        undo = reverse("admin:profiles_mergelog_change", args=[result.pk])
                        self.message_user(
                            request,
                            format_html(
                                'Merged #{} into #{}. <a href="{}" id="undo-link">Undo</a>',
                                result.merged_ids[0],
                                result.survivor_id,
                                undo,
                            ),
                        )
                    else:
                        self.message_user(request, f"Suggestion {decision}ed.")
            return HttpResponseRedirect(reverse("admin:profiles_mergesuggestion_next"))
        sides = merge_suggestion_sides(suggestion=suggestion)
        rows = []
        for name, parts in (suggestion.field_scores or {}).items():
            rows.append(
                {
                    "field": FIELDS[name].label if name in FIELDS else name,
                    "similarity": parts.get("similarity"),
                    "contribution": parts.get("contribution", 0),
                }
            )
        rows.sort(key=lambda r: -abs(r["contribution"]))
        chart = {
            "labels": [r["field"] for r in rows],
            "values": [r["contribution"] for r in rows],
        }
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Review suggestion #{suggestion.pk}",
            "suggestion": suggestion,
            "sides": sides,
            "rows": rows,
            "chart": chart,
            "pending": suggestion.status == MergeSuggestion.Status.PENDING,
            "can_decide": self.has_change_permission(request, suggestion),
        }
        return TemplateResponse(request, "admin/profiles/merge_review.html", context)


@admin.register(MergeLog)
class MergeLogAdmin(admin.ModelAdmin):
    list_display = ("id", "survivor", "merged_ids", "reason", "created_at", "unmerged_at")
    list_filter = ("unmerged_at",)
    list_select_related = ("survivor",)
    raw_id_fields = ("survivor",)
    show_full_result_count = False
    readonly_fields = (
        "survivor", "merged_ids", "reason", "snapshot", "survivor_snapshot", "extensions",
        "created_by", "created_at", "unmerged_at", "unmerged_by",
    )  # fmt: skip
    change_form_template = "admin/profiles/mergelog_change_form.html"

    def has_add_permission(self, request):
        return False

    def get_urls(self):
        unmerge = path(
            "<int:object_id>/unmerge/",
            self.admin_site.admin_view(self.unmerge_view),
            name="profiles_mergelog_unmerge",
        )
        return [unmerge, *super().get_urls()]

    def unmerge_view(self, request, object_id: int):
        log = get_object_or_404(MergeLog, pk=object_id)
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:profiles_mergelog_change", args=[log.pk]))
        if not request.user.has_perm("profiles.change_mergesuggestion"):
            raise PermissionDenied
        try:
            restored = profile_unmerge(merge_log=log, actor=request.user)
        except MergeError as exc:
            self.message_user(request, str(exc), messages.WARNING)
        else:
            self.log_change(request, log, "Unmerged")
            ids = ", ".join(f"#{p.pk}" for p in restored)
            self.message_user(request, f"Unmerged: {ids} restored; they will not merge again.")
        return HttpResponseRedirect(reverse("admin:profiles_mergelog_change", args=[log.pk]))


@admin.register(DoNotMerge)
class DoNotMergeAdmin(admin.ModelAdmin):
    list_display = ("left_id", "right_id", "reason", "created_by", "created_at")
    search_fields = ("=left_id", "=right_id")
    show_full_result_count = False


__all__ = ["Profile", "json"]
