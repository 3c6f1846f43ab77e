from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    """Sources, imports, raw and source records, identities, profiles, events, tracking API."""

    name = "profiles"
    verbose_name = "Customer data"
