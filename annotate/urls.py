"""URLs of the annotate app, included from config/urls.py: ``urlpatterns`` (the archive, labelling
and adjudication pages, at the site's root), ``api_urlpatterns`` (their API, under api/, before the
other apps' API) and ``router_urlpatterns`` (STOW-RS and the radiographs' and imports' viewsets,
under api/, after them: ``radiographs/<id>/predictions/`` is ml's)."""

from django.urls import URLPattern, URLResolver, include, path
from rest_framework.routers import DefaultRouter

import config.converters  # noqa: F401 - registers the <id:...> converter (63-bit ids; longer is a 404)
from annotate import api as annotate_api
from annotate import views as annotate_views
from annotate.archive import stow
from annotate.labelling import api as labelling_api
from annotate.labelling import views as label_views

urlpatterns = [
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
    path("labelling/exchange/", label_views.exchange_page, name="labelling_exchange"),
]

api_urlpatterns = [
    path("radiographs/<id:pk>/pixels/", labelling_api.radiograph_pixels, name="radiograph-pixels"),
    path("labelling/next/", labelling_api.labelling_next, name="labelling-next"),
    path("labelling/assignments/<id:pk>/", labelling_api.assignment_detail, name="assignment-detail"),
    path("labelling/assignments/<id:pk>/submit/", labelling_api.assignment_submit, name="assignment-submit"),
    path("labelling/progress/", labelling_api.labelling_progress, name="labelling-progress"),
    path("labelling/agreement/", labelling_api.labelling_agreement, name="labelling-agreement"),
    path("adjudications/", labelling_api.adjudication_list, name="adjudication-list"),
    path("adjudications/<id:pk>/", labelling_api.adjudication_detail, name="adjudication-detail"),
    path("adjudications/<id:pk>/resolve/", labelling_api.adjudication_resolve, name="adjudication-resolve"),
    path("ground-truth/", labelling_api.ground_truth, name="ground-truth"),
    path("annotations/export/", labelling_api.annotations_export, name="annotations-export"),
    path("annotations/import/", labelling_api.annotations_import, name="annotations-import"),
]

router = DefaultRouter()
router.register("radiographs", annotate_api.RadiographViewSet, basename="radiograph")
router.register("imports", annotate_api.ImportJobViewSet, basename="import")

router_urlpatterns: list[URLPattern | URLResolver] = [
    # STOW-RS (annotate/archive/stow.py): a PACS posts instances; before the router.
    path("dicomweb/studies", stow.stow_studies, name="dicomweb-stow"),
    path("", include(router.urls)),
]
