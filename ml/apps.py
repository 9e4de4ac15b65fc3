from django.apps import AppConfig

from common.audit import EXPORT, Audited


class MlConfig(AppConfig):
    name = "ml"
    verbose_name = "Models"
    # The URLs of this app that the access log records (common.audit).
    audited = {
        # The model's reading of a radiograph and its heatmaps.
        "radiograph_predictions": Audited("radiograph"),
        "radiograph-predictions": Audited("radiograph"),
        "prediction-heatmap": Audited("prediction"),
        # Exports: dataset tables, model files.
        "dataset-hips-csv": Audited("dataset", action=EXPORT),
        "model-file": Audited("model_version", action=EXPORT),
    }

    def ready(self) -> None:
        # Deferred: models and tasks may be imported only once the app registry is ready.
        from config.celery import on_connect
        from ml import signals  # noqa: F401  (connects the receivers)
        from ml.operations import requeue_missed_work

        on_connect(requeue_missed_work)
