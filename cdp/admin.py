"""Admin for the shared audit log (the site itself is cdp.sites.CdpAdminSite)."""

from django.contrib import admin

from cdp.models import AuditEvent


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
