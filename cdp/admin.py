"""The product's admin site: the main UI, with headline counts on its index page."""

from django.contrib import admin

from cdp.models import AuditEvent


class CdpAdminSite(admin.AdminSite):
    site_header = "Customer Data Platform"
    site_title = "CDP"
    index_title = "Overview"
    index_template = "admin/cdp_index.html"

    def index(self, request, extra_context=None):
        from profiles.selectors import headline_counts

        extra_context = {**(extra_context or {}), "headline": headline_counts()}
        return super().index(request, extra_context)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "target", "actor")
    list_filter = ("action",)
    search_fields = ("target", "action")
    list_select_related = ("actor",)
    show_full_result_count = False
    readonly_fields = ("actor", "action", "target", "details", "created_at")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
