from django.apps import AppConfig


class ActivationConfig(AppConfig):
    """Destinations, activations and export runs (see docs/activation.md)."""

    name = "activation"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created

        from activation.db import register_sqlite_functions
        from activation.services.privacy import (
            activation_erasure_notices,
            activation_subject_collect,
            activation_subject_erase,
        )
        from consent.registry import SubjectDataHandler, register, register_erasure_notice_hook

        connection_created.connect(register_sqlite_functions, dispatch_uid="activation_sqlite_fns")
        # profile_id is a plain id here, so the generic sweep misses it (docs/privacy.md).
        register(
            SubjectDataHandler(
                name="activation",
                models=("activation.ActivationMember", "activation.RunItem"),
                collect=activation_subject_collect,
                erase=activation_subject_erase,
                order=50,
            )
        )
        register_erasure_notice_hook(activation_erasure_notices)
