from django.urls import path

from segments import api

api_urlpatterns = [
    path("segments", api.segment_list_view, name="api_segment_list"),
    path("segments/count", api.segment_count_view, name="api_segment_count"),
    path("segments/<int:segment_id>", api.segment_detail_view, name="api_segment_detail"),
    path("segments/<int:segment_id>/members", api.segment_members_view, name="api_segment_members"),
    path("segments/<int:segment_id>/refresh", api.segment_refresh_view, name="api_segment_refresh"),
]
