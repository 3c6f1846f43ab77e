"""Admin for customer data: sources and mappings, imports, records, identities, profiles."""

from __future__ import annotations

import json

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from cdp.normalize import IdentifierTypes
from profiles.forms import DataSourceForm
from profiles.models import (
    DataSource,
    Event,
    FieldMapping,
    Identity,
    Profile,
    ProfileRedirect,
    RawRecord,
    SourceRecord,
)
from profiles.selectors import lookup_keys, profile_recent_events


def _table(headers: list[str], rows) -> str:
    head = format_html_join("", "<th>{}</th>", ((h,) for h in headers))
    body = format_html_join(
        "", "<tr>{}</tr>", ((format_html_join("", "<td>{}</td>", ((c,) for c in r)),) for r in rows)
    )
    return format_html('<table class="cdp-table"><thead><tr>{}</tr></thead>{}</table>', head, body)


class FieldMappingInline(admin.TabularInline):
    model = FieldMapping
    extra = 1
    fields = ("source_field", "target", "transform", "identifier_type", "is_key")


@admin.register(DataSource)
class DataSourceAdmin(admin.ModelAdmin):
    form = DataSourceForm
    list_display = ("name", "kind", "preset", "priority", "default_region", "created_at")
    list_filter = ("kind",)
    search_fields = ("name",)
    readonly_fields = ("write_key", "created_at")
    inlines = [FieldMappingInline]
    fields = ("name", "kind", "preset", "priority", "default_region", "write_key", "created_at")


@admin.register(RawRecord)
class RawRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "import_run", "row_number", "message_id", "status", "error")
    list_filter = ("status", "source")
    list_select_related = ("source", "import_run")
    show_full_result_count = False
    raw_id_fields = ("import_run", "source_record")
    readonly_fields = [f.name for f in RawRecord._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class IdentityInline(admin.TabularInline):
    model = Identity
    fk_name = "source_record"
    extra = 0
    fields = ("type", "raw_value", "key", "flag")
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(SourceRecord)
class SourceRecordAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "external_key", "profile", "updated_at")
    list_filter = ("source",)
    list_select_related = ("source", "profile")
    search_fields = ("=external_key",)
    show_full_result_count = False
    raw_id_fields = ("profile",)
    readonly_fields = [f.name for f in SourceRecord._meta.fields]
    inlines = [IdentityInline]

    def has_add_permission(self, request):
        return False


@admin.register(Identity)
class IdentityAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "raw_value", "key", "flag", "profile", "source_record")
    list_filter = ("type",)
    list_select_related = ("profile", "source_record__source")
    search_fields = ("=key",)
    show_full_result_count = False
    raw_id_fields = ("profile", "source_record")
    readonly_fields = [f.name for f in Identity._meta.fields]

    def has_add_permission(self, request):
        return False


class SourceRecordInline(admin.TabularInline):
    model = SourceRecord
    extra = 0
    fields = ("source", "external_key", "attributes", "updated_at")
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source")


class ProfileIdentityInline(IdentityInline):
    fk_name = "profile"
    fields = ("type", "raw_value", "key", "flag", "source_record")
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("source_record__source")


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "city",
        "country",
        "view_360",
    )
    search_fields = ("^last_name", "^first_name", "^email")
    search_help_text = "E-mail, phone (any format), customer or user id, or the start of a name."
    show_full_result_count = False
    readonly_fields = (
        "id",
        "first_name",
        "last_name",
        "email",
        "phone",
        "city",
        "country",
        "attributes_with_sources",
        "recent_events",
        "loyalty_memberships",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields
    inlines = [SourceRecordInline, ProfileIdentityInline]

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if not request.user.has_perm("profiles.view_loyaltymember"):
            fields = [f for f in fields if f != "loyalty_memberships"]
        return fields

    def has_add_permission(self, request):
        return False

    @admin.display(description="360")
    def view_360(self, obj: Profile) -> str:
        """The profile 360 page (insights app): reachable from every search result."""
        return format_html(
            '<a href="{}">360 view</a>', reverse("admin:insights_profile_360", args=[obj.pk])
        )

    def get_search_results(self, request, queryset, search_term):
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        term = search_term.strip()
        if not term:
            return results, may_have_duplicates
        condition = Q()
        for id_type in IdentifierTypes.ALL:
            keys = lookup_keys(id_type, term, everywhere=True)
            if keys:
                condition |= Q(type=id_type, key__in=keys)
        if condition:
            ids = Identity.objects.filter(condition).values("profile_id")
            results = results | queryset.filter(pk__in=ids)
        return results, may_have_duplicates

    @admin.display(description="Attributes (value ← source record)")
    def attributes_with_sources(self, obj: Profile) -> str:
        sources = {
            sr.pk: f"{sr.source.name} #{sr.pk}"
            for sr in obj.source_records.select_related("source")
        }
        return _table(
            ["Attribute", "Value", "From"],
            (
                (name, value, sources.get(obj.attribute_sources.get(name), "?"))
                for name, value in obj.attributes.items()
            ),
        )

    @admin.display(description="Recent events")
    def recent_events(self, obj: Profile) -> str:
        events = profile_recent_events(profile=obj)
        return _table(
            ["When", "Type", "Name", "Properties"],
            (
                (e.timestamp, e.type, e.name, json.dumps(e.properties, ensure_ascii=False)[:200])
                for e in events
            ),
        )

    @admin.display(description="Loyalty")
    def loyalty_memberships(self, obj: Profile) -> str:
        from profiles.loyalty_selectors import loyalty_summary

        rows = []
        for card in loyalty_summary(obj):
            needs = ", ".join(
                f"{value} {'qualifying points' if key == 'qualifying_points' else 'spend'}"
                for key, value in card["next_tier_needs"].items()
            )
            url = reverse("admin:profiles_loyaltymember_change", args=[card["member"].pk])
            rows.append(
                (
                    format_html('<a href="{}">{}</a>', url, card["member_number"]),
                    card["program"],
                    card["tier"],
                    card["tier_valid_until"].date() if card["tier_valid_until"] else "",
                    card["points_balance"],
                    card["expiring_soon"],
                    card["qualifying_points"],
                    card["spend_in_period"],
                    f"{card['next_tier']}: {needs} more" if card["next_tier"] else "",
                )
            )
        if not rows:
            return "Not a member of any program."
        return _table(
            [
                "Member number",
                "Program",
                "Tier",
                "Tier until",
                "Points",
                "Expiring in 30 days",
                "Qualifying points",
                "Spend",
                "Next tier",
            ],
            rows,
        )


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "name", "timestamp", "profile", "source")
    list_filter = ("type", "source")
    list_select_related = ("profile", "source")
    search_fields = ("=message_id", "=user_id", "=anonymous_id")
    show_full_result_count = False
    raw_id_fields = ("profile", "source_record", "raw_record")
    readonly_fields = [f.name for f in Event._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ProfileRedirect)
class ProfileRedirectAdmin(admin.ModelAdmin):
    list_display = ("old_id", "profile", "created_at")
    search_fields = ("=old_id",)
    raw_id_fields = ("profile",)


# Registered from their own modules: imports, resolution and loyalty admins.
from profiles import admin_imports, admin_resolution, loyalty_admin  # noqa: E402, F401
