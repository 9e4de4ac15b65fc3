"""URLs of the triage app, included from config/urls.py at the site's root: ``urlpatterns``
(the worklist page, the operations page) and ``api_urlpatterns`` (their APIs, under api/). The
paths are those the pages had under ml: /models/worklist/, /ops/, /api/worklist/, /api/ops/."""

from django.urls import path

from triage import ops_views, views

urlpatterns = [
    path("models/worklist/", views.worklist_page, name="worklist"),
    path("ops/", ops_views.ops_page, name="ops"),
]

api_urlpatterns = [
    path("worklist/", views.worklist_api, name="worklist-api"),
    path("ops/", ops_views.ops_api, name="ops-api"),
]
