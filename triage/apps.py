from django.apps import AppConfig

from common.audit import EXPORT, Audited, no_id


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Triage"
    # The URLs of this app that the access log records (common.audit).
    audited = {
        "worklist": Audited("worklist", no_id),
        "worklist-api": Audited("worklist", no_id),
        "results-download": Audited("radiograph", action=EXPORT),
    }

    def ready(self) -> None:
        # Deferred: models and tasks may be imported only once the app registry is ready.
        from config.celery import on_connect
        from triage import signals  # noqa: F401  (connects the receivers)
        from triage.results.sending import requeue_sendings

        on_connect(requeue_sendings)
