from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from cdp.views import favicon
from consent.urls import api_urlpatterns as consent_api_urlpatterns
from consent.urls import public_urlpatterns as privacy_urlpatterns
from profiles.urls import api_urlpatterns, tracking_urlpatterns
from segments.urls import api_urlpatterns as segment_api_urlpatterns

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("v1/", include(tracking_urlpatterns)),
    path("api/", include(api_urlpatterns)),
    path("api/", include(segment_api_urlpatterns)),
    path("api/", include(consent_api_urlpatterns)),
    path("privacy/", include(privacy_urlpatterns)),
]

handler500 = "cdp.views.server_error"
