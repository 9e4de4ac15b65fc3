"""URLs of the triage app, included from config/urls.py at the site's root: ``urlpatterns``
(the worklist page, the operations page) and ``api_urlpatterns`` (their APIs, under api/). The
paths are those the pages had under ml: /models/worklist/, /ops/, /api/worklist/, /api/ops/."""

from django.urls import path

import config.converters  # noqa: F401 - registers the <id:...> converter (63-bit ids; longer is a 404)
from triage import ops_views, results_api, views

urlpatterns = [
    path("models/worklist/", views.worklist_page, name="worklist"),
    path("ops/", ops_views.ops_page, name="ops"),
]

api_urlpatterns = [
    path("worklist/", views.worklist_api, name="worklist-api"),
    path("ops/", ops_views.ops_api, name="ops-api"),
    path("radiographs/<id:pk>/results/<str:kind>.dcm", results_api.results_download, name="results-download"),
    path("radiographs/<id:pk>/results/send", results_api.results_send, name="results-send"),
    path("results/sendings/", results_api.results_sendings, name="results-sendings"),
]
