import os

from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Radiographs and labels"

    def ready(self) -> None:
        from django.conf import settings

        # The data folder holds the SQLite file, stored files and, without
        # Redis, the Celery broker's queue: make sure it exists before anyone
        # (web process, worker, management command) writes there.
        folders = [settings.DATA_DIR, settings.MEDIA_ROOT, settings.STATIC_ROOT]
        if settings.CELERY_BROKER_URL.startswith("filesystem"):
            options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
            folders += [options["data_folder_in"], options["control_folder"]]
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
