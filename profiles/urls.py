from django.urls import path

from profiles import api, views

tracking_urlpatterns = [
    path("batch", views.tracking_batch, name="tracking_batch"),
    path("import", views.tracking_batch, name="tracking_import"),
    path("identify", views.tracking_identify, name="tracking_identify"),
    path("track", views.tracking_track, name="tracking_track"),
    path("page", views.tracking_page, name="tracking_page"),
    path("screen", views.tracking_screen, name="tracking_screen"),
    path("group", views.tracking_group, name="tracking_group"),
    path("alias", views.tracking_alias, name="tracking_alias"),
]

api_urlpatterns = [
    path("profiles/lookup", api.profile_lookup_view, name="api_profile_lookup"),
    path("profiles/<int:profile_id>", api.profile_detail_view, name="api_profile_detail"),
]
