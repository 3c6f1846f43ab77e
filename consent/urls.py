from django.urls import path

from consent import api, views

public_urlpatterns = [
    path("request/", views.request_page, name="privacy_request"),
    path(
        "request/<uuid:public_id>/verify/", views.request_verify_page, name="privacy_request_verify"
    ),
    path("verify/<str:token>/", views.request_verify_link, name="privacy_verify_link"),
]

api_urlpatterns = [
    path("consent", api.consent_view, name="api_consent"),
    path("privacy/requests", api.public_request_create_view, name="api_privacy_request_create"),
    path(
        "privacy/requests/<uuid:public_id>/verify",
        api.public_request_verify_view,
        name="api_privacy_request_verify",
    ),
]
