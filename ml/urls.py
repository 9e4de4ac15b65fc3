"""URLs of the ml app: ``urlpatterns`` (pages, under models/) and ``api_urlpatterns`` (under api/,
included before the router so that ``radiographs/<id>/predictions/`` matches here first).
"""

from django.urls import path

import config.converters  # noqa: F401 - registers the <id:...> converter (63-bit ids; longer is a 404)
from ml import api, views

urlpatterns = [
    path("", views.model_list, name="model_list"),
    path("runs/<id:pk>/", views.run_detail, name="run_detail"),
    path("runs/<id:pk>/cancel/", views.run_cancel, name="run_cancel"),
    path("versions/<id:pk>/", views.model_detail, name="model_detail"),
    path("versions/<id:pk>/activate/", views.model_activate, name="model_activate"),
    path("radiographs/<id:pk>/predictions/", views.radiograph_predictions, name="radiograph_predictions"),
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/<id:pk>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<id:pk>/flow.svg", views.dataset_flow_image, {"kind": "svg"}, name="dataset_flow_svg"),
    path("datasets/<id:pk>/flow.png", views.dataset_flow_image, {"kind": "png"}, name="dataset_flow_png"),
]

api_urlpatterns = [
    path("datasets/", api.dataset_list, name="dataset-list"),
    path("datasets/<id:pk>/", api.dataset_detail, name="dataset-detail"),
    path("datasets/<id:pk>/hips.csv", api.dataset_hips_csv, name="dataset-hips-csv"),
    path("training-runs/", api.training_run_list, name="training-run-list"),
    path("training-runs/<id:pk>/", api.training_run_detail, name="training-run-detail"),
    path("training-runs/<id:pk>/cancel/", api.training_run_cancel, name="training-run-cancel"),
    path("models/", api.model_list, name="model-list"),
    path("models/<id:pk>/", api.model_detail, name="model-detail"),
    path("models/<id:pk>/activate/", api.model_activate, name="model-activate"),
    path("models/<id:pk>/files/<str:name>", api.model_file, name="model-file"),
    path("radiographs/<id:pk>/predictions/", api.radiograph_predictions, name="radiograph-predictions"),
    path("predictions/<id:pk>/heatmap.png", api.prediction_heatmap, name="prediction-heatmap"),
    path("predict/", api.predict, name="predict"),
]
