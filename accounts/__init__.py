"""Accounts: expiring API tokens (django-rest-knox), the page where a user sees and revokes
theirs, the login page and password reset only where mail is configured."""
