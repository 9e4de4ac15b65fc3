import os
from typing import Any

from django.apps import AppConfig

from common.audit import EXPORT, Audited, no_id
from common.storage import DIRECTORY_MODE, private_dir


class AnnotateConfig(AppConfig):
    name = "annotate"
    verbose_name = "Radiographs and labels"
    # The URLs of this app that the access log records (common.audit).
    audited = {
        # The archive: a radiograph's page, its image and its pixels (the viewer), by page and by API.
        "radiograph_detail": Audited("radiograph"),
        "radiograph_preview": Audited("radiograph"),
        "radiograph-pixels": Audited("radiograph"),
        "radiograph-detail": Audited("radiograph"),
        "radiograph-preview": Audited("radiograph"),
        # Labelling and adjudication: each shows one radiograph.
        "label_page": Audited("assignment"),
        "assignment-detail": Audited("assignment"),
        "assignment-submit": Audited("assignment"),
        "adjudicate_page": Audited("adjudication"),
        "adjudication-detail": Audited("adjudication"),
        "adjudication-resolve": Audited("adjudication"),
        # Exports: ground truth, everyone's labels.
        "ground-truth": Audited("ground_truth", no_id, EXPORT),
        "annotations-export": Audited("annotations", no_id, EXPORT),
        "annotations-import": Audited("annotations", no_id),
        # Radiographs received over HTTP (STOW-RS): who sent them.
        "dicomweb-stow": Audited("radiograph", no_id),
    }

    def ready(self) -> None:
        from django.conf import settings

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
    """A worker starting adopts or removes what killed web workers left (annotate.archive.cleanup)."""
    import logging

    try:
        # deferred: only once the app registry is ready
        from annotate.archive.cleanup import upload_orphans_remove

        upload_orphans_remove()
    except Exception:  # noqa: BLE001 - never keep a worker from starting
        logging.getLogger(__name__).exception("could not clean up orphaned uploads")
