from django.apps import AppConfig


class ActivationConfig(AppConfig):
    """Destinations, activations and export runs (see docs/activation.md)."""

    name = "activation"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from activation.db import register_sqlite_functions

        connection_created.connect(register_sqlite_functions, dispatch_uid="activation_sqlite_fns")
