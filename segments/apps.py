from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    """Segment rule trees, the compiler, the builder and membership (see issue 5)."""

    name = "segments"
