from django.apps import AppConfig


class ConsentConfig(AppConfig):
    """Consent history, data-subject requests, suppression (see issue 6)."""

    name = "consent"
