from django.apps import AppConfig

from common.audit import Audited, no_id


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Triage"
    # The URLs of this app that the access log records (common.audit).
    audited = {
        "worklist": Audited("worklist", no_id),
        "worklist-api": Audited("worklist", no_id),
    }
