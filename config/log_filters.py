import logging


class QuietPydicom(logging.Filter):
    """Drop pydicom's own log lines below CRITICAL.

    pydicom logs each decoder failure with a traceback (and may quote header
    values); ingest reports its own one-line reason for every refused file.
    pydicom sets its logger's level itself on import, so a level in LOGGING
    would not hold: the filter sits on our handler instead.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name.startswith("pydicom") and record.levelno < logging.CRITICAL)
