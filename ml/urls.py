"""URLs of the ml app.

``urlpatterns``: the pages, included from config/urls.py with
``path("models/", include("ml.urls"))``. ``api_urlpatterns``: the API,
included with ``path("api/", include(ml.urls.api_urlpatterns))``
(before the router's ``path("api/", include(router.urls))`` or after; no overlap).
"""

from django.urls import path

from ml import api, views

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset_detail"),
]

api_urlpatterns = [
    path("datasets/", api.dataset_list, name="dataset-list"),
    path("datasets/<int:pk>/", api.dataset_detail, name="dataset-detail"),
    path("datasets/<int:pk>/hips.csv", api.dataset_hips_csv, name="dataset-hips-csv"),
]
