"""The product's admin site: the main UI, with headline counts on its index page."""

from django.contrib import admin


class CdpAdminSite(admin.AdminSite):
    site_header = "Customer Data Platform"
    site_title = "CDP"
    index_title = "Overview"
    index_template = "admin/cdp_index.html"

    def index(self, request, extra_context=None):
        from profiles.selectors import headline_counts

        extra_context = {**(extra_context or {}), "headline": headline_counts()}
        return super().index(request, extra_context)
