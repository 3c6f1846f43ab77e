"""django-q2 tasks: take an id, load the run row, call one service."""

from segments import services
from segments.models import SegmentRefresh


def segment_refresh_execute(refresh_id: int) -> str:
    refresh = SegmentRefresh.objects.get(pk=refresh_id)
    return services.segment_refresh_execute(refresh=refresh).status


def segments_refresh_scheduled() -> int:
    return services.segments_refresh_scheduled()
