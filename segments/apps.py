from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    """Segment rule trees, the compiler, the builder and membership (see issue 5)."""

    name = "segments"

    def ready(self) -> None:
        from consent.registry import SubjectDataHandler, register, register_restriction_hook
        from segments.services import (
            segment_members_restrict,
            segments_subject_collect,
            segments_subject_erase,
        )

        # Restriction of processing: the person leaves every segment at once (docs/privacy.md).
        register_restriction_hook(segment_members_restrict)
        register(
            SubjectDataHandler(
                name="segments",
                models=("segments.SegmentMembership", "segments.SegmentMembershipChange"),
                collect=segments_subject_collect,
                erase=segments_subject_erase,
                order=50,
            )
        )
