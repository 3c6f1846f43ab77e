from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class CdpAdminConfig(AdminConfig):
    """The Django admin, with the product's own AdminSite as the default site."""

    default_site = "cdp.sites.CdpAdminSite"


class CdpConfig(AppConfig):
    """Shared pieces: audit log, roles, normalisation, jobs."""

    name = "cdp"
    label = "cdp"
    verbose_name = "Platform"

    def ready(self) -> None:
        from django.db.models import Field, ForeignObject
        from django.db.models.signals import post_migrate

        from cdp.lookups import Among
        from cdp.roles import roles_sync_after_migrate

        Field.register_lookup(Among)
        ForeignObject.register_lookup(Among)  # relations only see their own lookups

        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="cdp_roles_sync")
