"""The product's admin site: the main UI, with headline counts on its index page."""

from django.contrib import admin
from django.urls import reverse


class CdpAdminSite(admin.AdminSite):
    site_header = "Customer Data Platform"
    site_title = "CDP"
    index_title = "Overview"
    index_template = "admin/cdp_index.html"

    def index(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "headline": self.headline(request)}
        return super().index(request, extra_context)

    def headline(self, request) -> list[tuple[str, int, str | None]]:
        """(label, count, changelist url or None): a tile links only where its list would open,
        by the same check the changelist makes (its ModelAdmin's view-or-change permission)."""
        from profiles.selectors import headline_counts

        tiles = []
        for label, count, model in headline_counts():
            model_admin = self._registry.get(model)
            url = None
            if model_admin is not None and model_admin.has_view_or_change_permission(request):
                opts = model._meta
                url = reverse(f"{self.name}:{opts.app_label}_{opts.model_name}_changelist")
            tiles.append((label, count, url))
        return tiles
