from django.apps import AppConfig


class MlConfig(AppConfig):
    name = "ml"
    verbose_name = "Models"

    def ready(self) -> None:
        from ml import signals  # noqa: F401  (connects the receivers)
