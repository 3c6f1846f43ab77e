from django.apps import AppConfig


class ConsentConfig(AppConfig):
    """Consent history, data-subject requests, suppression (see docs/privacy.md)."""

    name = "consent"
    verbose_name = "Privacy"

    def ready(self) -> None:
        from consent.models import ConsentRecord, Restriction
        from consent.services.consent import consent_profiles_merge, consent_profiles_unmerge
        from consent.services.subject_data import register_builtin_handlers
        from profiles.services.merging import merge_map_winners, merge_participant_register

        register_builtin_handlers()
        # Consent records belong to a profile: they move on merge and come back on unmerge.
        merge_participant_register(
            "consent",
            on_merge=consent_profiles_merge,
            on_unmerge=consent_profiles_unmerge,
            involved=lambda table: (
                merge_map_winners(table, ConsentRecord) | merge_map_winners(table, Restriction)
            ),
        )
