from django.apps import AppConfig


class ProfilesConfig(AppConfig):
    """Sources, imports, raw and source records, identities, profiles, events, tracking API."""

    name = "profiles"
    verbose_name = "Customer data"

    def ready(self) -> None:
        _loyalty_merge_participant_register()
        _loyalty_subject_data_register()


def _loyalty_merge_participant_register() -> None:
    """Loyalty memberships take part in merges and unmerges (docs/loyalty.md).

    Its ``on_merge`` runs before the absorbed profiles are deleted, its ``on_unmerge`` after
    they are restored.
    """
    from profiles.models import LoyaltyMember
    from profiles.services import loyalty
    from profiles.services.merging import merge_map_winners, merge_participant_register

    merge_participant_register(
        "loyalty",
        on_merge=lambda survivor_id, other_ids: loyalty.loyalty_profiles_merged(
            survivor_id=survivor_id, other_ids=other_ids
        ),
        on_unmerge=lambda data, survivor_id, restored_ids: loyalty.loyalty_profile_unmerged(
            survivor_id=survivor_id, restored_ids=restored_ids
        ),
        involved=lambda table: merge_map_winners(table, LoyaltyMember),
    )


def _loyalty_subject_data_register() -> None:
    """Data-subject requests reach loyalty (docs/loyalty.md, docs/privacy.md).

    Access exports the person's memberships, ledger, handled order events, tier changes and
    the audit rows about them; erasure deletes them with ``loyalty_profiles_erase``. Order 80:
    before the ``profiles`` handler (90), which deletes the profiles a membership protects,
    and the member-number source records go with the memberships.
    """
    from consent.registry import SubjectDataHandler, register
    from profiles.loyalty_selectors import loyalty_profiles_export
    from profiles.services import loyalty

    register(
        SubjectDataHandler(
            name="loyalty",
            models=(
                "profiles.LoyaltyMember",
                "profiles.LoyaltyLedgerEntry",
                "profiles.LoyaltyActivity",
                "profiles.LoyaltyTierChange",
            ),
            collect=lambda subject: loyalty_profiles_export(profile_ids=subject.profile_ids),
            erase=lambda subject: loyalty.loyalty_profiles_erase(profile_ids=subject.profile_ids),
            order=80,
        )
    )
