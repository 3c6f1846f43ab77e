from django.apps import AppConfig


class ConsentConfig(AppConfig):
    """Consent history, data-subject requests, suppression (see docs/privacy.md)."""

    name = "consent"
    verbose_name = "Privacy"

    def ready(self) -> None:
        from consent.services.subject_data import register_builtin_handlers

        register_builtin_handlers()
