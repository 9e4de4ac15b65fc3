"""``python manage.py reader_report`` and friends."""
