from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from accounts.views import TokenObtainView
from annotate.urls import api_urlpatterns as annotate_api_urlpatterns
from annotate.urls import router_urlpatterns as annotate_router_urlpatterns
from common import health
from config import converters, views
from ml.urls import api_urlpatterns as ml_api_urlpatterns
from readerstudy.urls import api_urlpatterns as readerstudy_api_urlpatterns
from readerstudy.urls import reader_urlpatterns
from triage.urls import api_urlpatterns as triage_api_urlpatterns

assert converters.ID_REGEX  # registers the <id:...> converter before any pattern below uses it

# API errors are JSON, also with DEBUG off (config.errors); the pages keep Django's.
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", health.health, name="health"),
    # Readiness and liveness (README "Running in production"; common.health).
    path("health/live/", health.health_live, name="health-live"),
    path("accounts/", include("accounts.urls")),  # Django's login pages, API tokens
    path("admin/", admin.site.urls),
    path("", include("annotate.urls")),  # the archive, labelling and adjudication pages
    path("api/", include(annotate_api_urlpatterns)),
    path("", include("triage.urls")),  # the worklist (/models/worklist/) and the operations page (/ops/)
    path("models/", include("ml.urls")),
    path("studies/", include("readerstudy.urls")),
    path("reader/", include(reader_urlpatterns)),
    path("api/", include(ml_api_urlpatterns)),
    path("api/", include(triage_api_urlpatterns)),
    path("api/", include(readerstudy_api_urlpatterns)),
    # STOW-RS and the radiographs' and imports' viewsets: after the other apps' api/ includes.
    path("api/", include(annotate_router_urlpatterns)),
    path("api/token/", TokenObtainView.as_view(), name="api_token"),  # expiring tokens (accounts.tokens)
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
]
