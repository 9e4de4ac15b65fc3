from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from accounts.views import TokenObtainView
from annotate import api as annotate_api
from annotate import labelling_api, stow
from annotate import labelling_views as label_views
from annotate import views as annotate_views
from config import converters, views
from ml import ops_views
from ml.urls import api_urlpatterns as ml_api_urlpatterns
from readerstudy.urls import api_urlpatterns as readerstudy_api_urlpatterns
from readerstudy.urls import reader_urlpatterns

assert converters.ID_REGEX  # registers the <id:...> converter before any pattern below uses it

# API errors are JSON, also with DEBUG off (config.errors); the pages keep Django's.
handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"

router = DefaultRouter()
router.register("radiographs", annotate_api.RadiographViewSet, basename="radiograph")
router.register("imports", annotate_api.ImportJobViewSet, basename="import")

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    # Operations (README "Running in production"): liveness, the operations page and its API.
    path("health/live/", views.health_live, name="health-live"),
    path("ops/", ops_views.ops_page, name="ops"),
    path("api/ops/", ops_views.ops_api, name="ops-api"),
    path("accounts/", include("accounts.urls")),  # Django's login pages, API tokens
    path("admin/", admin.site.urls),
    path("radiographs/", annotate_views.radiograph_list, name="radiograph_list"),
    path("radiographs/<id:pk>/", annotate_views.radiograph_detail, name="radiograph_detail"),
    path("radiographs/<id:pk>/preview.jpg", annotate_views.radiograph_preview, name="radiograph_preview"),
    path("imports/", annotate_views.import_list, name="import_list"),
    path("imports/<id:pk>/", annotate_views.import_detail, name="import_detail"),
    path("label/", label_views.label_start, name="label_start"),
    path("label/<id:pk>/", label_views.label_page, name="label_page"),
    path("adjudicate/", label_views.adjudication_queue, name="adjudication_queue"),
    path("adjudicate/<id:pk>/", label_views.adjudicate_page, name="adjudicate_page"),
    path("labelling/progress/", label_views.progress_page, name="labelling_progress"),
    path("labelling/agreement/", label_views.agreement_page, name="labelling_agreement"),
    path("api/radiographs/<id:pk>/pixels/", labelling_api.radiograph_pixels, name="radiograph-pixels"),
    path("api/labelling/next/", labelling_api.labelling_next, name="labelling-next"),
    path("api/labelling/assignments/<id:pk>/", labelling_api.assignment_detail, name="assignment-detail"),
    path("api/labelling/assignments/<id:pk>/submit/", labelling_api.assignment_submit, name="assignment-submit"),
    path("api/labelling/progress/", labelling_api.labelling_progress, name="labelling-progress"),
    path("api/labelling/agreement/", labelling_api.labelling_agreement, name="labelling-agreement"),
    path("api/adjudications/", labelling_api.adjudication_list, name="adjudication-list"),
    path("api/adjudications/<id:pk>/", labelling_api.adjudication_detail, name="adjudication-detail"),
    path("api/adjudications/<id:pk>/resolve/", labelling_api.adjudication_resolve, name="adjudication-resolve"),
    path("api/ground-truth/", labelling_api.ground_truth, name="ground-truth"),
    path("api/annotations/export/", labelling_api.annotations_export, name="annotations-export"),
    path("api/annotations/import/", labelling_api.annotations_import, name="annotations-import"),
    path("labelling/exchange/", label_views.exchange_page, name="labelling_exchange"),
    path("models/", include("ml.urls")),
    path("studies/", include("readerstudy.urls")),
    path("reader/", include(reader_urlpatterns)),
    path("api/", include(ml_api_urlpatterns)),
    path("api/", include(readerstudy_api_urlpatterns)),
    # STOW-RS (annotate/stow.py): a PACS posts instances; before the router's api/ include.
    path("api/dicomweb/studies", stow.stow_studies, name="dicomweb-stow"),
    path("api/", include(router.urls)),
    path("api/token/", TokenObtainView.as_view(), name="api_token"),  # expiring tokens (accounts.tokens)
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api_schema"), name="api_docs"),
]
