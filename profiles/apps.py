from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    """Sources, imports, raw and source records, identities, profiles, events, tracking API."""

    name = "profiles"
    verbose_name = "Customer data"

    def ready(self) -> None:
        _loyalty_merge_participant_register()


def _loyalty_merge_participant_register() -> None:
    """Loyalty memberships take part in merges and unmerges (docs/loyalty.md).

    Its ``on_merge`` runs before the absorbed profiles are deleted, its ``on_unmerge`` after
    they are restored.
    """
    from profiles.services import loyalty
    from profiles.services.merging import merge_participant_register

    merge_participant_register(
        "loyalty",
        on_merge=lambda survivor_id, other_ids: loyalty.loyalty_profiles_merged(
            survivor_id=survivor_id, other_ids=other_ids
        ),
        on_unmerge=lambda data, survivor_id, restored_ids: loyalty.loyalty_profile_unmerged(
            survivor_id=survivor_id, restored_ids=restored_ids
        ),
    )
