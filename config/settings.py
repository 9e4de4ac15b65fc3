"""Settings for the hip-fracture study platform.

Every value that differs between a laptop demo and a hospital deployment is
read from the environment through the small typed helpers below, which fail
loudly on a malformed value instead of silently falling back.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use true/false)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# A .env file in the repository root (`make demo` writes one: DEBUG, SECRET_KEY, DATA_DIR) fills in
# the variables the environment leaves unset, so that manage.py works in a new shell; a variable
# set in the environment always wins. READ_DOTENV=false ignores the file: the test suite sets it
# (tests/settings.py), so that a developer's .env never reaches the tests or their subprocesses.
# A production site sets its variables in the environment and has no .env.
if env_bool("READ_DOTENV", True):
    load_dotenv(BASE_DIR / ".env", override=False)


DEBUG = env_bool("DEBUG", False)
DATA_DIR = Path(env_str("DATA_DIR", str(BASE_DIR / "var"))).resolve()

SECRET_KEY = env_str("SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off")
    SECRET_KEY = "insecure-development-key-do-not-use-in-production-" + "x" * 20

# Key of the keyed hash (HMAC-SHA256) that turns patient IDs and accession
# numbers into pseudonyms. Changing it breaks the link between old and new
# imports of the same patient, so it is kept apart from SECRET_KEY.
PSEUDONYM_KEY = env_str("PSEUDONYM_KEY", SECRET_KEY)
# Patient data (docs/operations/data-protection.md). Every received DICOM is de-identified at
# ingest; its UIDs become keyed pseudonyms (PSEUDONYM_KEY). DICOM_DATE_SHIFT: "keep" the dates,
# or "shift" each patient's dates back by a keyed per-patient 62-730 days. PACS_LINK_KEY: the
# Fernet key (Fernet.generate_key()) that encrypts each radiograph's original UIDs; empty:
# derived from SECRET_KEY. Both keys live in the environment, never in DATA_DIR.
DICOM_DATE_SHIFT = env_str("DICOM_DATE_SHIFT", "keep")
if DICOM_DATE_SHIFT not in ("keep", "shift"):
    raise ImproperlyConfigured(f"DICOM_DATE_SHIFT={DICOM_DATE_SHIFT!r}: use keep or shift")
PACS_LINK_KEY = env_str("PACS_LINK_KEY")
# Files the DICOM listener's ingest rejected are kept (de-identified, or only their reason)
# this many days in DICOM_SPOOL_DIR/rejected, then removed.
REJECTED_RETENTION_DAYS = env_int("REJECTED_RETENTION_DAYS", 14)
# Upload folders (DATA_DIR/incoming) and temporary upload files older than this, with no import
# job waiting for them, were left by a killed web worker: removed at start (cleanup_uploads).
UPLOAD_ORPHAN_SECONDS = env_int("UPLOAD_ORPHAN_SECONDS", 3600)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost" if DEBUG else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "accounts",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "common",
    "annotate",
    "ml",
    "triage",
    "readerstudy",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Records who made each change that the history of labels keeps.
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "common.roles.roles_context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{DATA_DIR / 'db.sqlite3'}"),
        # A connection kept for a minute (checked before reuse) instead of one per request:
        # bench/readers.py measured the reader API's p95 at 824 ms with 0 and 88 ms with 60.
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The demo runs the web server and a worker on one SQLite file: wait for
    # the other's write lock instead of failing at once.
    # WAL with synchronous=NORMAL: a commit appends to the write-ahead log without an fsync of its
    # own (the log is synced at checkpoints), so each ingested radiograph's transaction costs no
    # disk flush (bench/ingest.py: ~45 ms a file before). SQLite documents this pair as safe
    # against corruption; a power cut may lose the last commits, never the database, and a lost
    # row's files are adopted by the next import of the same file. Readers no longer wait for
    # the writer either.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"
MEDIA_ROOT = DATA_DIR / "media"
STORAGES = {
    "default": {"BACKEND": "common.storage.AtomicFileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Uploads: each DICOM file and each .zip is limited; a zip is also limited in
# what it expands to, so that a zip bomb is refused before it is unpacked.
MAX_UPLOAD_BYTES = env_int("MAX_UPLOAD_BYTES", 2 * 1024**3)
MAX_DICOM_BYTES = env_int("MAX_DICOM_BYTES", 256 * 1024**2)
MAX_ZIP_EXPANDED_BYTES = env_int("MAX_ZIP_EXPANDED_BYTES", 8 * 1024**3)
DATA_UPLOAD_MAX_NUMBER_FILES = env_int("DATA_UPLOAD_MAX_NUMBER_FILES", 2000)
# Decoding (annotate.archive.dicom.DecodeLimits): a file whose header declares more than MAX_DECODED_PIXELS
# (rows x columns x samples x frames) or MAX_DECODED_BYTES (the same x BitsAllocated / 8) is refused
# before any pixel is decoded, and a deflated one is refused once it inflates past MAX_DECODED_BYTES
# + 8 MiB. The largest real radiograph, 43 x 43 cm at 0.1 mm, is about 4300 x 4300 = 18.5 Mpx at
# 16 bits (37 MB): 25 Mpx and 64 MiB leave room above it and refuse decompression bombs.
MAX_DECODED_PIXELS = env_int("MAX_DECODED_PIXELS", 25_000_000)
MAX_DECODED_BYTES = env_int("MAX_DECODED_BYTES", 64 * 1024**2)
FILE_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024**2
# Uploads over FILE_UPLOAD_MAX_MEMORY_SIZE go to a temporary file in DATA_DIR (mode 0700), not
# /tmp: inside the backup's and the cleanup's reach. Nothing stored is world-readable.
FILE_UPLOAD_TEMP_DIR = str(DATA_DIR / "tmp" / "uploads")
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
PREVIEW_MAX_SIZE = env_int("PREVIEW_MAX_SIZE", 1024)
# Pixels are decoded from the stored DICOM (annotate.archive.pixels) and kept, per process, in an LRU
# cache of at most PIXEL_CACHE_BYTES of arrays (512 MiB: ~40 radiographs of 3000 x 2500), plus a
# quarter of that of the viewer's gzip bodies.
PIXEL_CACHE_BYTES = env_int("PIXEL_CACHE_BYTES", 512 * 1024**2)
# A losslessly compressed file (RLE, JPEG lossless, JPEG-LS, JPEG 2000 lossless) is stored
# decompressed when that takes at most STORE_DECOMPRESSED_PERCENT % of the bytes received (RLE
# radiographs, typically): every later read is then a memory map, not a decode. Files that compress
# better stay compressed and are decoded on first read. 0: keep every file as received.
STORE_DECOMPRESSED_PERCENT = env_int("STORE_DECOMPRESSED_PERCENT", 150)
# Threads that decode and store files during an import (0: one per CPU).
INGEST_WORKERS = env_int("INGEST_WORKERS", 0)

# Labelling: how many labellers read each radiograph blind, how long an
# unfinished image stays with its labeller, and how well two boxes of one hip
# must overlap for the labellers to agree.
LABELS_PER_RADIOGRAPH = env_int("LABELS_PER_RADIOGRAPH", 2)
ASSIGNMENT_TIMEOUT_MINUTES = env_int("ASSIGNMENT_TIMEOUT_MINUTES", 120)
AGREEMENT_IOU = float(env_str("AGREEMENT_IOU", "0.5"))
# Pre-labelling: labellers see the detector's proposed boxes only; the
# classifier's class of a proposal reaches the labelling page (and anchors the
# ground truth to the model it will score) only where a site turns this on.
PROPOSALS_SHOW_CLASS = env_bool("PROPOSALS_SHOW_CLASS", False)

# Models. DENSENET169_WEIGHTS: a local copy of Keras' ImageNet DenseNet-169 "notop"
# weights (densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5) for the paper
# configuration (nothing is ever downloaded); empty, or naming no file: training `paper` is
# refused unless random weights are asked for explicitly (train --random-init).
# A trainer writes a heartbeat every TRAINING_HEARTBEAT_SECONDS; another delivery of
# the run takes over when it has been silent for three of them.
# BOOTSTRAP_ITERATIONS: the paper's 2000 resamples for every confidence interval.
DENSENET169_WEIGHTS = env_str("DENSENET169_WEIGHTS")
# RESNET50_WEIGHTS: local weights of the paper detector's ResNet-50 encoder (keras-hub
# ResNetBackbone.load_weights); empty = random initialisation.
RESNET50_WEIGHTS = env_str("RESNET50_WEIGHTS")
TRAINING_HEARTBEAT_SECONDS = float(env_str("TRAINING_HEARTBEAT_SECONDS", "10"))
BOOTSTRAP_ITERATIONS = env_int("BOOTSTRAP_ITERATIONS", 2000)
# Score every new radiograph with the active classifier as it arrives.
SCORE_ON_ARRIVAL = env_bool("SCORE_ON_ARRIVAL", True)

# DICOM C-STORE receiver (manage.py dicom_listener; annotate/dicomnet.py). A received file is
# acknowledged once it is on disk in DICOM_SPOOL_DIR and ingested from there, so nothing a
# modality was told is stored can be lost by a crash. DICOM_ALLOWED_CALLING_AE: the calling
# AE titles that may send (comma-separated; empty = any). Timeouts in seconds.
DICOM_AE_TITLE = env_str("DICOM_AE_TITLE", "HIPSTUDY")
DICOM_PORT = env_int("DICOM_PORT", 11112)
DICOM_SPOOL_DIR = Path(env_str("DICOM_SPOOL_DIR") or DATA_DIR / "spool").resolve()
DICOM_MAX_ASSOCIATIONS = env_int("DICOM_MAX_ASSOCIATIONS", 8)
DICOM_ALLOWED_CALLING_AE = env_list("DICOM_ALLOWED_CALLING_AE")
DICOM_MAX_PDU = env_int("DICOM_MAX_PDU", 1024**2)
DICOM_ACSE_TIMEOUT = env_int("DICOM_ACSE_TIMEOUT", 30)
DICOM_DIMSE_TIMEOUT = env_int("DICOM_DIMSE_TIMEOUT", 60)
DICOM_NETWORK_TIMEOUT = env_int("DICOM_NETWORK_TIMEOUT", 60)
# Threads that ingest spooled files (ingest is partly I/O: file writes, the database).
DICOM_DRAIN_THREADS = env_int("DICOM_DRAIN_THREADS", 2)

# DICOMweb (annotate/dicomweb.py, annotate/stow.py). DICOMWEB_TIMEOUT: seconds pull_dicomweb
# waits for each answer of a PACS. DICOMWEB_STOW_MAX_BYTES: the largest STOW-RS request body
# (413 beyond it); each instance in it is bounded by MAX_DICOM_BYTES as well.
DICOMWEB_TIMEOUT = env_int("DICOMWEB_TIMEOUT", 60)
DICOMWEB_STOW_MAX_BYTES = env_int("DICOMWEB_STOW_MAX_BYTES", MAX_UPLOAD_BYTES)

# Results back to the PACS (triage/results, docs/operations/results-to-pacs.md): a DICOM SR and
# a heatmap overlay per reading. RESULTS_UID_ROOT: the root of their new UIDs (digits and dots;
# the default 2.25 makes UUID-derived UIDs). RESULTS_SEND_AFTER_READING: send each end-to-end
# reading to the destinations of its source. RESULTS_DESTINATIONS: a JSON list of destinations
# besides those staff add in the admin, e.g. [{"name": "pacs", "source": "dicom_store", "kind":
# "dimse", "host": "10.0.0.5", "port": 104, "called_ae": "PACS", "calling_ae": "HIPSTUDY"}] or
# {"kind": "stow", "url": "https://pacs/dicom-web", "username": "...", "password": "..."}.
# A failed sending is tried again RESULTS_SEND_ATTEMPTS times in all, RESULTS_SEND_BACKOFF
# seconds doubling after each failure (at most an hour apart).
RESULTS_UID_ROOT = env_str("RESULTS_UID_ROOT", "2.25")
RESULTS_SEND_AFTER_READING = env_bool("RESULTS_SEND_AFTER_READING", False)
try:
    RESULTS_DESTINATIONS: list[dict[str, Any]] = json.loads(env_str("RESULTS_DESTINATIONS") or "[]")
except ValueError as exc:
    raise ImproperlyConfigured(f"RESULTS_DESTINATIONS is not JSON: {exc}") from None
if not isinstance(RESULTS_DESTINATIONS, list) or not all(isinstance(d, dict) for d in RESULTS_DESTINATIONS):
    raise ImproperlyConfigured("RESULTS_DESTINATIONS must be a JSON list of objects")
RESULTS_SEND_ATTEMPTS = env_int("RESULTS_SEND_ATTEMPTS", 12)
RESULTS_SEND_BACKOFF = env_int("RESULTS_SEND_BACKOFF", 30)

# Celery: Redis when REDIS_URL is set; otherwise Kombu's filesystem transport
# inside DATA_DIR, so the demo runs a real worker without any server.
REDIS_URL = env_str("REDIS_URL")
BROKER_DIR = DATA_DIR / "broker"
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        # A message whose worker died unacknowledged goes back to the queue
        # after this many seconds.
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
    }
else:
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Operations (README "Running in production"). A task published while Redis is away fails
# within a few seconds instead of retrying forever: the page or API says that the queue is
# unavailable (common.queueing.QueueUnavailable). A worker re-queues missed work whenever it
# (re)connects (ml.operations.requeue_missed_work). /health/ asks the workers with a broadcast
# that waits HEALTH_WORKERS_TIMEOUT seconds and keeps the answer HEALTH_WORKERS_CACHE_SECONDS.
CELERY_BROKER_CONNECTION_TIMEOUT = float(env_str("CELERY_BROKER_CONNECTION_TIMEOUT", "2"))
CELERY_BROKER_TRANSPORT_OPTIONS.update(
    {"max_retries": 1, "interval_start": 0, "interval_step": 0.5, "interval_max": 1, "connect_retries_timeout": 3}
)
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS["socket_connect_timeout"] = CELERY_BROKER_CONNECTION_TIMEOUT
CELERY_TASK_PUBLISH_RETRY_POLICY: dict[str, float] = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
HEALTH_WORKERS_TIMEOUT = float(env_str("HEALTH_WORKERS_TIMEOUT", "0.5"))
HEALTH_WORKERS_CACHE_SECONDS = env_int("HEALTH_WORKERS_CACHE_SECONDS", 5)
OPS_POLL_SECONDS = env_int("OPS_POLL_SECONDS", 5)
MIDDLEWARE += ["common.queueing.QueueUnavailableMiddleware"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "accounts.tokens.TokenAuthentication",  # django-rest-knox, expiring; see below
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "common.api_schema.AutoSchema",  # documents the error answers too
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # ?format= names the file format of label exports, not a DRF renderer.
    "URL_FORMAT_OVERRIDE": None,
    # Hostile input (README "Security"): JSON nested deeper than JSON_MAX_DEPTH is a 400, and
    # bad input that DRF leaves to Django (a missing object, a number too large for the
    # database) is a 4xx; config.errors makes every API error JSON, also with DEBUG off.
    "DEFAULT_PARSER_CLASSES": [
        "config.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "EXCEPTION_HANDLER": "config.errors.api_exception_handler",
}
JSON_MAX_DEPTH = env_int("JSON_MAX_DEPTH", 64)
SPECTACULAR_SETTINGS = {
    "TITLE": "Hip-fracture study platform API",
    "DESCRIPTION": "DICOM ingest, labelling, models and reader studies.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from our own static files: a hospital network may not reach a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The ``id`` path converter (config.converters) is an integer.
    "PATH_CONVERTER_OVERRIDES": {"id": int},
    # One name per choice set shared by several serializers (the six classes; where a hip or a
    # radiograph came from).
    "ENUM_NAME_OVERRIDES": {
        "HipClassEnum": "annotate.labels.HipClass",
        "LabellerHipSourceEnum": "annotate.labelling.services.LABELLER_SOURCES",
        "RadiographSourceEnum": "annotate.models.Radiograph.Source",
        # The API's other choice sets (common/api_schema.py: the schema validates with no warning).
        "AssignmentStatusEnum": "annotate.labels.Assignment.Status",
        "AdjudicationStatusEnum": "annotate.labels.Adjudication.Status",
        "ImportJobStatusEnum": "annotate.models.ImportJob.Status",
        "ImportItemStatusEnum": "annotate.models.ImportItem.Status",
        "TrainingRunStatusEnum": "ml.models.TrainingRun.Status",
        "ConditionEnum": "readerstudy.models.Condition",
        "ReaderStudyStatusEnum": "readerstudy.models.ReaderStudy.Status",
    },
}

# Production hardening; all of it is on whenever DEBUG is off.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Security (README "Security"): login lockout, sessions, headers, API throttling, access log.
# django-axes: AXES_FAILURE_LIMIT failed logins of one username from one address lock that pair
# out (also for the right password) for AXES_COOLOFF_MINUTES (0: until an admin runs
# `manage.py axes_reset_username NAME`); a success resets the count. The API token endpoint
# (api/token/) goes through the same authenticate() and is locked out alike.
from datetime import timedelta  # noqa: E402

INSTALLED_APPS += ["axes"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_ENABLED = env_bool("AXES_ENABLED", True)
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_MINUTES = env_int("AXES_COOLOFF_MINUTES", 30)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES) if AXES_COOLOFF_MINUTES > 0 else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"  # the lockout page; JSON for the API
# API tokens (accounts.tokens, django-rest-knox): only a SHA-512 digest of each token is stored;
# a token expires TOKEN_TTL_DAYS after it was made, and is refused at once when revoked (the
# tokens page, /accounts/tokens/), or while its user is deactivated or locked out by axes.
TOKEN_TTL_DAYS = env_int("TOKEN_TTL_DAYS", 30)
if TOKEN_TTL_DAYS < 1:
    raise ImproperlyConfigured(f"TOKEN_TTL_DAYS={TOKEN_TTL_DAYS}: a token lives at least one day")
REST_KNOX = {"TOKEN_TTL": timedelta(days=TOKEN_TTL_DAYS), "AUTH_HEADER_PREFIX": "Token", "AUTO_REFRESH": False}
# Mail, for password reset only: without EMAIL_HOST there is no reset (its pages answer 404 and
# the login page offers none), rather than a form that claims to have sent a mail.
EMAIL_HOST = env_str("EMAIL_HOST", "")
EMAIL_PORT = env_int("EMAIL_PORT", 587)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", True)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "webmaster@localhost")
# Behind a reverse proxy that sets X-Forwarded-For: how many proxies (0: the peer address is the client).
# The access log takes the client's address the same way.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
if TRUSTED_PROXY_COUNT:
    AXES_IPWARE_PROXY_COUNT = TRUSTED_PROXY_COUNT
    AXES_IPWARE_META_PRECEDENCE_ORDER = ("HTTP_X_FORWARDED_FOR", "REMOTE_ADDR")
# Clinical workstations are shared: a session ends after SESSION_COOKIE_AGE_MINUTES (default 8 h,
# one shift) and, with SESSION_EXPIRE_AT_BROWSER_CLOSE, when the browser closes.
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE_MINUTES", 8 * 60) * 60
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", True)
# The pages' JavaScript reads the csrftoken cookie (static/js/boxes.js, the exchange page), so it
# stays readable by scripts by default; Django's docs note HttpOnly on it adds no real protection.
CSRF_COOKIE_HTTPONLY = env_bool("CSRF_COOKIE_HTTPONLY", False)
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# Content-Security-Policy (config.security.SecurityHeadersMiddleware): scripts, styles, images and
# API calls only from this site, no plugins, no framing, forms post only here. 'unsafe-inline'
# stays for scripts and styles because a few templates carry inline <script>/style= (import page,
# label exchange, the viewer's import map, the API docs); see README "Security".
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
    "base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
# With DEBUG on the policy is sent as Content-Security-Policy-Report-Only: violations show in the
# browser console without blocking (browser tests drive pages with injected scripts).
CSP_REPORT_ONLY = env_bool("CSP_REPORT_ONLY", DEBUG)
PERMISSIONS_POLICY = env_str(
    "PERMISSIONS_POLICY",
    "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=(), "
    "interest-cohort=(), browsing-topics=()",
)
# API throttling (DRF; config.security): per logged-in user or token, and per address for
# anonymous calls. Counted in Redis when REDIS_URL is set (shared by every gunicorn worker),
# else in each process' memory; a Redis outage suspends the limit rather than failing requests.
THROTTLE_USER_RATE = env_str("THROTTLE_USER_RATE", "3000/minute")
THROTTLE_ANON_RATE = env_str("THROTTLE_ANON_RATE", "60/minute")
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["config.security.AnonRateThrottle", "config.security.UserRateThrottle"]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"anon": THROTTLE_ANON_RATE, "user": THROTTLE_USER_RATE}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "throttle": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "hipstudy-throttle",
        "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "throttle"},
}
# JSON and form bodies (not file uploads, which MAX_UPLOAD_BYTES bounds, nor STOW-RS, streamed)
# are read into memory: Django's 2.5 MB is far above the largest label, answer or training request.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2621440)
# Access log (common.audit): written after authentication; axes' middleware last, as it asks.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1, "common.audit.AuditMiddleware"
)
# Endpoints that anyone may post to refuse bodies over ANONYMOUS_BODY_MAX_BYTES by their
# Content-Length, first of all middleware, before the CSRF check or axes reads the form and
# before a multipart body is spooled to disk (config.security.AnonymousBodyLimitMiddleware).
ANONYMOUS_BODY_MAX_BYTES = env_int("ANONYMOUS_BODY_MAX_BYTES", 8 * 1024)
ANONYMOUS_BODY_URL_NAMES = ("api_token", "login", "password_reset", "password_reset_confirm")
MIDDLEWARE.insert(0, "config.security.AnonymousBodyLimitMiddleware")
MIDDLEWARE += [
    "config.security.SecurityHeadersMiddleware",
    "config.security.BodyTooLargeMiddleware",
    "axes.middleware.AxesMiddleware",
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"quiet_pydicom": {"()": "config.log_filters.QuietPydicom"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["quiet_pydicom"]}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django": {"level": "WARNING"},
        "celery": {"level": "INFO"},
        "axes.apps": {"level": "WARNING"},  # its start-up banner on every command; lockouts still log
    },
}
