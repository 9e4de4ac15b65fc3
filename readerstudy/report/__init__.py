"""The reader study's report: its figures, tables, HTML page and PDF (``reader_report``,
``reader_tables``: pure, no Django) and the study report the site builds as a task (``reports``)."""
