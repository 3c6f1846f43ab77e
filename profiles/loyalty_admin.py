"""Admin for loyalty: programs (tiers, earning rules), members with balance and tier, the ledger,
tier changes and job runs; bulk point adjustments with a reason (an intermediate form)."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from profiles.loyalty_selectors import loyalty_member_ledger, loyalty_members_queryset
from profiles.models import (
    LoyaltyCurrency,
    LoyaltyEarningRule,
    LoyaltyJobRun,
    LoyaltyLedgerEntry,
    LoyaltyMember,
    LoyaltyProgram,
    LoyaltyTier,
    LoyaltyTierChange,
)
from profiles.services.loyalty import (
    LoyaltyError,
    loyalty_enrolment_validate,
    loyalty_job_enqueue,
    loyalty_member_enrol,
    loyalty_points_adjust_bulk,
)

MAX_BULK_ADJUST = 10_000


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written only by services: viewable, never edited or deleted in the admin."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class LoyaltyTierInline(admin.TabularInline):
    model = LoyaltyTier
    extra = 0
    fields = ("rank", "name", "min_qualifying_points", "min_spend", "benefits")


class LoyaltyEarningRuleInline(admin.TabularInline):
    model = LoyaltyEarningRule
    extra = 0
    fields = ("name", "kind", "currency", "points_per_unit", "bonus_points", "is_active")


@admin.register(LoyaltyProgram)
class LoyaltyProgramAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "currency",
        "points_validity_days",
        "qualifying_period_months",
        "is_active",
    )
    prepopulated_fields = {"slug": ("name",)}
    inlines = [LoyaltyTierInline, LoyaltyEarningRuleInline]
    actions = ("run_earning", "run_expiry", "run_tiers")

    def _queue(self, request, queryset, kind):
        for program in queryset:
            loyalty_job_enqueue(kind=kind, program=program)
        self.message_user(request, f"Queued for {queryset.count()} program(s).", messages.SUCCESS)

    @admin.action(description="Earn points from new events now", permissions=["change"])
    def run_earning(self, request, queryset):
        self._queue(request, queryset, LoyaltyJobRun.Kind.EARN)

    @admin.action(description="Expire points now", permissions=["change"])
    def run_expiry(self, request, queryset):
        self._queue(request, queryset, LoyaltyJobRun.Kind.EXPIRE)

    @admin.action(description="Evaluate tiers now", permissions=["change"])
    def run_tiers(self, request, queryset):
        self._queue(request, queryset, LoyaltyJobRun.Kind.TIERS)


class AdjustPointsForm(forms.Form):
    points = forms.IntegerField(
        help_text="Positive to add, negative to remove. A removal larger than a member's "
        "balance skips that member."
    )
    currency = forms.ChoiceField(choices=LoyaltyCurrency.choices, initial=LoyaltyCurrency.POINTS)
    reason = forms.CharField(max_length=300, help_text="Shown in the ledger and the audit log.")
    token = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError("Adjust by a non-zero number of points.")
        return points

    def clean_reason(self):
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class EnrolForm(forms.ModelForm):
    """Adding a member means enrolling a profile (the service), never a bare insert."""

    member_number = forms.CharField(
        max_length=40, required=False, help_text="Leave blank to generate one."
    )

    class Meta:
        model = LoyaltyMember
        fields = ("program", "profile")

    def clean(self):
        data = super().clean()
        if data.get("program") and data.get("profile"):
            try:
                loyalty_enrolment_validate(
                    program=data["program"],
                    profile=data["profile"],
                    member_number=data.get("member_number") or "",
                )
            except LoyaltyError as exc:
                raise forms.ValidationError(str(exc)) from None
        return data


class LedgerInline(admin.TabularInline):
    model = LoyaltyLedgerEntry
    fk_name = "member"
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("occurred_at", "kind", "currency", "points", "remaining", "expires_at", "reason")
    readonly_fields = fields
    verbose_name_plural = "Ledger (latest 50 of this member's own entries)"

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-occurred_at", "-id")

    def has_change_permission(self, request, obj=None):
        return False


class TierChangeInline(admin.TabularInline):
    model = LoyaltyTierChange
    extra = 0
    max_num = 0
    can_delete = False
    fields = ("changed_at", "from_tier", "to_tier", "reason", "qualifying_points", "spend")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("from_tier", "to_tier")

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(LoyaltyMember)
class LoyaltyMemberAdmin(admin.ModelAdmin):
    list_display = (
        "member_number",
        "program",
        "profile_link",
        "tier",
        "points_balance",
        "qualifying_points",
        "tier_valid_until",
        "status",
        "enrolled_at",
    )
    list_filter = ("program", "status", "tier")
    search_fields = ("=member_number",)
    list_select_related = ("program", "profile", "tier")
    show_full_result_count = False
    ordering = ("-enrolled_at",)
    actions = ("adjust_points",)
    readonly_fields = (
        "member_number",
        "program",
        "profile_link",
        "origin_profile_id",
        "status",
        "merged_into",
        "tier",
        "tier_valid_until",
        "points_balance",
        "qualifying_points",
        "spend_in_period",
        "enrolled_at",
        "ledger_link",
    )
    inlines = [TierChangeInline]

    def get_queryset(self, request):
        return loyalty_members_queryset()

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = EnrolForm
        return super().get_form(request, obj, change, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("program", "profile", "member_number")
        return self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def get_inlines(self, request, obj=None):
        return [] if obj is None else self.inlines

    raw_id_fields = ("profile",)

    def has_change_permission(self, request, obj=None):
        # Members change only through services (earning, adjustments, merges).
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        member = loyalty_member_enrol(
            program=form.cleaned_data["program"],
            profile=form.cleaned_data["profile"],
            member_number=form.cleaned_data.get("member_number") or "",
            actor=request.user,
        )
        obj.pk = member.pk
        obj.member_number = member.member_number

    @admin.display(description="Profile", ordering="profile_id")
    def profile_link(self, obj: LoyaltyMember) -> str:
        url = reverse("admin:profiles_profile_change", args=[obj.profile_id])
        return format_html('<a href="{}">{}</a>', url, obj.profile)

    @admin.display(description="Ledger")
    def ledger_link(self, obj: LoyaltyMember) -> str:
        url = reverse("admin:profiles_loyaltyledgerentry_changelist") + f"?account={obj.pk}"
        count = loyalty_member_ledger(member=obj).count()
        return format_html('<a href="{}">{} entries</a>', url, count)

    def has_adjust_points_permission(self, request) -> bool:
        return request.user.has_perm("profiles.adjust_points")

    @admin.action(description="Adjust points (with a reason)", permissions=["adjust_points"])
    def adjust_points(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True)[: MAX_BULK_ADJUST + 1])
        if len(ids) > MAX_BULK_ADJUST:
            self.message_user(
                request,
                f"Select at most {MAX_BULK_ADJUST:,} members per adjustment "
                "(filter the list first).",
                messages.ERROR,
            )
            return None
        form = AdjustPointsForm(
            request.POST if "apply" in request.POST else None,
            initial={"token": uuid.uuid4().hex},
        )
        if "apply" in request.POST and form.is_valid():
            try:
                entries, skipped = loyalty_points_adjust_bulk(
                    member_ids=ids,
                    points=form.cleaned_data["points"],
                    currency=form.cleaned_data["currency"],
                    reason=form.cleaned_data["reason"],
                    actor=request.user,
                    idempotency_key=form.cleaned_data["token"],
                )
            except LoyaltyError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            self.message_user(
                request,
                f"Adjusted {len(entries)} member(s) by {form.cleaned_data['points']} "
                f"{form.cleaned_data['currency']}.",
                messages.SUCCESS,
            )
            for _member_id, why in skipped:
                self.message_user(request, f"Skipped: {why}", messages.WARNING)
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": "Adjust loyalty points",
            "form": form,
            "ids": ids,
            "count": len(ids),
            "action_checkbox_name": ACTION_CHECKBOX_NAME,
            "opts": self.model._meta,
            "select_across": request.POST.get("select_across", "0"),
        }
        return TemplateResponse(request, "admin/profiles/loyalty_adjust_points.html", context)


class AccountFilter(admin.SimpleListFilter):
    """``?account=<member id>``: every entry counting toward that member's balance."""

    title = "member account"
    parameter_name = "account"

    def lookups(self, request, model_admin):
        value = self.value()
        return [(value, f"member #{value}")] if value and value.isdigit() else []

    def has_output(self):
        # Only listed (and so applied) when the parameter is given: from a member's page.
        return self.value() is not None

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            raise IncorrectLookupParameters("account must be a member id")
        member = LoyaltyMember.objects.filter(pk=int(value)).first()
        if member is None:
            return queryset.none()
        return queryset.filter(pk__in=loyalty_member_ledger(member=member).values("pk"))


@admin.register(LoyaltyLedgerEntry)
class LoyaltyLedgerEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "occurred_at",
        "member",
        "kind",
        "currency",
        "points",
        "remaining",
        "expires_at",
        "order_id",
        "reason",
        "created_by",
    )
    list_filter = (AccountFilter, "kind", "currency", "member__program")
    list_select_related = ("member", "created_by")
    search_fields = ("=member__member_number", "=order_id")
    show_full_result_count = False
    date_hierarchy = "occurred_at"
    raw_id_fields = ("member", "event", "lot", "counterpart", "rule")


@admin.register(LoyaltyTierChange)
class LoyaltyTierChangeAdmin(ReadOnlyAdmin):
    list_display = ("changed_at", "member", "from_tier", "to_tier", "reason")
    list_filter = ("to_tier",)
    list_select_related = ("member", "from_tier", "to_tier")
    search_fields = ("=member__member_number",)
    show_full_result_count = False


@admin.register(LoyaltyJobRun)
class LoyaltyJobRunAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "program", "status", "counts", "created_at", "finished_at")
    list_filter = ("kind", "status")
    list_select_related = ("program",)
