"""Settings for the test suite: the real settings with a few values overridden.

Tests run against PostgreSQL when DATABASE_URL is set (as in CI) and SQLite
otherwise; files go to a throw-away data folder.
"""

import os
import tempfile

# A developer's .env (make demo writes one) is not read: the tests, and every process they start
# (which inherits this environment), see only what is set here and in the real environment.
os.environ["READ_DOTENV"] = "false"
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix="hipstudy-test-"))
os.environ.setdefault("PSEUDONYM_KEY", "test-pseudonym-key")

from config.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405

# Each test run gets its own PostgreSQL test database, so that two runs on one machine
# (a developer's and an editor's, or parallel checkouts) never drop each other's.
if DATABASES["default"]["ENGINE"].endswith("postgresql"):  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}  # noqa: F405
