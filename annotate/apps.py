import os
from typing import Any

from django.apps import AppConfig


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Radiographs and labels"

    def ready(self) -> None:
        from django.conf import settings

        from annotate.storage import DIRECTORY_MODE, private_dir

        # The data folder holds the SQLite file, stored files and, without
        # Redis, the Celery broker's queue: make sure it exists before anyone
        # (web process, worker, management command) writes there.
        folders = [settings.DATA_DIR, settings.STATIC_ROOT]
        if settings.CELERY_BROKER_URL.startswith("filesystem"):
            options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
            folders += [options["data_folder_in"], options["control_folder"]]
        for folder in folders:
            os.makedirs(folder, exist_ok=True)
        # Patient data: stored files for the service's user and group only; files received
        # and not yet de-identified (uploads, their temporary files) for its user alone.
        private_dir(settings.MEDIA_ROOT, settings.FILE_UPLOAD_DIRECTORY_PERMISSIONS or DIRECTORY_MODE)
        private_dir(settings.FILE_UPLOAD_TEMP_DIR)

        from celery.signals import worker_ready

        worker_ready.connect(_remove_upload_orphans, weak=False, dispatch_uid="annotate-upload-orphans")


def _remove_upload_orphans(**kwargs: Any) -> None:
    """A worker starting adopts or removes what killed web workers left (annotate.cleanup)."""
    import logging

    try:
        from annotate.cleanup import upload_orphans_remove

        upload_orphans_remove()
    except Exception:  # noqa: BLE001 - never keep a worker from starting
        logging.getLogger(__name__).exception("could not clean up orphaned uploads")
