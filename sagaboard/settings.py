"""Sagaboard settings: every knob comes from an environment variable (listed in the README).

Each service owns a database. With no DATABASE_URL they are SQLite files under SAGA_DATA_DIR;
with DATABASE_URL=postgres://.../NAME each service gets its own PostgreSQL database NAME_<service>
(created by `manage.py setupdb`); <SERVICE>_DATABASE_URL overrides one service's database.
"""
import hashlib
from decimal import Decimal
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent


class _Env(environ.Env):
    """django-environ's Env that remembers the name of every variable it is asked for, so that a
    deployment (docker-compose.yml) can be checked to set only variables Sagaboard reads."""

    def __init__(self, **scheme):
        super().__init__(**scheme)
        self.names_read: set[str] = set()

    def get_value(self, var, *args, **kwargs):
        self.names_read.add(var)
        return super().get_value(var, *args, **kwargs)


env = _Env()
# Every variable read through `env` in this module (the set fills as the module runs).
ENVIRONMENT_VARIABLES = env.names_read

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key" if DEBUG else environ.Env.NOTSET)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files, no CDN
    "channels",
    "sagaboard.kernel",
    "services.order",
    "services.exchange",
    "services.point",
    "services.deadline",
    "services.monitor",
    "sagaboard.dashboard",
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
]

ROOT_URLCONF = "sagaboard.urls"
APPEND_SLASH = False  # the API answers with and without a trailing slash itself (seed's paths)

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
            ],
        },
    },
]

ASGI_APPLICATION = "sagaboard.asgi.application"
# One web process, so the in-memory layer suffices; room for bursts of ~200 events/s per socket.
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer", "CONFIG": {"capacity": 2000}}}

# --- databases: one per service -------------------------------------------------------------
SERVICES = ("order", "exchange", "point", "deadline", "monitor")
SAGA_DATA_DIR = Path(env.str("SAGA_DATA_DIR", default=str(BASE_DIR / "var")))


def _sqlite(name):
    SAGA_DATA_DIR.mkdir(parents=True, exist_ok=True)  # a fresh clone has no var/ yet
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(SAGA_DATA_DIR / f"{name}.sqlite3"),
        # WAL lets the web process read while a service writes; IMMEDIATE takes the write lock
        # at BEGIN so two writers queue on the busy timeout instead of failing to upgrade.
        "OPTIONS": {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
        "TEST": {"NAME": str(SAGA_DATA_DIR / f"test_{name}.sqlite3")},
        # one connection per thread for the life of the process: opening one (and its PRAGMAs)
        # for every request was a large part of a POST's cost (README, "Efficiency")
        "CONN_MAX_AGE": None,
    }


def _database(alias):
    own = env.str(f"{alias.upper()}_DATABASE_URL", default="")
    if own:
        return env.db_url_config(own)
    shared = env.str("DATABASE_URL", default="")
    if not shared:
        return _sqlite("web" if alias == "default" else alias)
    config = env.db_url_config(shared)
    if config["ENGINE"].endswith("sqlite3"):
        raise environ.ImproperlyConfigured("DATABASE_URL is for PostgreSQL; SQLite is the default without it")
    if alias != "default":
        config["NAME"] = f"{config['NAME']}_{alias}"
    # persistent connections (checked before reuse), as for SQLite; DATABASE_CONN_MAX_AGE=0 closes each after use
    config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=None)
    config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {alias: _database(alias) for alias in ("default", *SERVICES)}
DATABASE_ROUTERS = ["sagaboard.routers.ServiceRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- saga -------------------------------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env.str("KAFKA_BOOTSTRAP_SERVERS", default="")
SAGA_BROKER_PORT = env.int("SAGA_BROKER_PORT", default=19092)
SAGA_EMBEDDED_BROKER = not KAFKA_BOOTSTRAP_SERVERS
if SAGA_EMBEDDED_BROKER:
    KAFKA_BOOTSTRAP_SERVERS = f"127.0.0.1:{SAGA_BROKER_PORT}"
# The embedded broker's cluster id is this instance's, named after its data directory: a process of
# another instance that reaches it (a port clash) refuses to use it (sagaboard/kernel/broker.py).
SAGA_CLUSTER_ID = ("sagaboard-" + hashlib.sha1(str(SAGA_DATA_DIR.resolve()).encode()).hexdigest()[:12]
                   if SAGA_EMBEDDED_BROKER else "")
SAGA_TOPIC = env.str("SAGA_TOPIC", default="choreography.deadline")
SAGA_TOPIC_PARTITIONS = env.int("SAGA_TOPIC_PARTITIONS", default=3)
SAGA_DEADLINE_SECONDS = env.float("SAGA_DEADLINE_SECONDS", default=10.0)
# The seed's currencyId 100/200 faults sleep for the deadline plus 5 s unless told otherwise.
SAGA_FAULT_DELAY_SECONDS = env.float("SAGA_FAULT_DELAY_SECONDS", default=SAGA_DEADLINE_SECONDS + 5.0)
SAGA_FAILING_CURRENCIES = env.list("SAGA_FAILING_CURRENCIES", default=["300"])
# point = amount × rate, an exact decimal ("1.1", not a binary float), rounded to 0.01 half to even
try:
    SAGA_EXCHANGE_RATE = Decimal(env.str("SAGA_EXCHANGE_RATE", default="1.0"))
    assert SAGA_EXCHANGE_RATE.is_finite() and 0 < SAGA_EXCHANGE_RATE <= 10**6
except (ArithmeticError, AssertionError):
    raise environ.ImproperlyConfigured(
        f"SAGA_EXCHANGE_RATE must be a decimal number above 0 and at most 1000000, not {env.str('SAGA_EXCHANGE_RATE')!r}") from None
SAGA_MAX_AMOUNT = env.int("SAGA_MAX_AMOUNT", default=1_000_000_000)
SAGA_MAX_EVENT_BYTES = env.int("SAGA_MAX_EVENT_BYTES", default=64 * 1024)
SAGA_CONSISTENCY_GRACE_SECONDS = env.float("SAGA_CONSISTENCY_GRACE_SECONDS", default=2.0)
# Events are published right after their commit by the process that wrote them; the relay
# publishes those still unpublished this long after their writing (their writer crashed or could
# not reach the broker), and looks for them this often (sagaboard/kernel/outbox.py).
SAGA_OUTBOX_POLL_MS = env.int("SAGA_OUTBOX_POLL_MS", default=1000)
# How consumers fetch (sagaboard/kernel/doorbell.py). With the embedded broker they park: they
# fetch when a Sagaboard publisher rang their doorbell for an event type they handle, when the last
# fetch brought records, or every SAGA_IDLE_POLL_MS; each fetch waits at most
# SAGA_KAFKA_FETCH_MAX_WAIT_MS for data (Tansu works while a fetch waits), and under load fetches
# are about SAGA_FETCH_LINGER_MS apart so they carry many records: the broker's and the services'
# cost is per fetch, not per record (README, "Typed rings and a longer linger"). While fetches are
# sparse, a ring ends that pause (doorbell.FETCH_BURST, EARLY_LOOK_SECONDS). With an external
# Kafka they long-poll instead (fetch.max.wait.ms, as Kafka documents). A publisher whose last two
# publishes were less than two lingers apart waits SAGA_PUBLISH_LINGER_MS so that more commits
# join one produce request; an idle one, and one that publishes once per lone order, sends at once
# (outbox.Publisher.busy; 25 ms: README, "One read of a batch's orders, and a lone order's publishes").
SAGA_DOORBELLS = env.bool("SAGA_DOORBELLS", default=SAGA_EMBEDDED_BROKER)
SAGA_KAFKA_FETCH_MAX_WAIT_MS = env.int("SAGA_KAFKA_FETCH_MAX_WAIT_MS", default=5 if SAGA_DOORBELLS else 500)
SAGA_IDLE_POLL_MS = env.int("SAGA_IDLE_POLL_MS", default=2000)
SAGA_FETCH_LINGER_MS = env.int("SAGA_FETCH_LINGER_MS", default=100)
# The services off the saga's critical path (the deadline, which arms a timer whose due time is
# in the event, and the monitor, which records): under load their fetches are this far apart and
# a ring ends the pause only once per 250 ms (doorbell.OFF_PATH_EARLY_LOOK_SECONDS), so each
# carries several times the records, while a lone order's few rings are still taken at once
# (kernel/service.py, Service.critical_path; README, "Off the critical path").
SAGA_OFF_PATH_FETCH_LINGER_MS = env.int("SAGA_OFF_PATH_FETCH_LINGER_MS", default=500)
SAGA_PUBLISH_LINGER_MS = env.int("SAGA_PUBLISH_LINGER_MS", default=25)
# A service process's hold on a partition (sagaboard/kernel/leases.py), renewed every second (a
# third of it if shorter); a process that dies without a word gives its partitions up this long
# after its last renewal.
SAGA_PARTITION_LEASE_SECONDS = env.float("SAGA_PARTITION_LEASE_SECONDS", default=3.0)
SAGA_SUPERVISOR_SOCKET = Path(env.str("SAGA_SUPERVISOR_SOCKET", default=str(SAGA_DATA_DIR / "supervisor.sock")))
# How long the answer to a request with an Idempotency-Key is kept (sagaboard/idempotency.py)
SAGA_IDEMPOTENCY_HOURS = env.float("SAGA_IDEMPOTENCY_HOURS", default=24.0)
PORT = env.int("PORT", default=8088)
# Daphne processes of the web server, sharing its port (one uses one core at most)
SAGA_WEB_PROCESSES = env.int("SAGA_WEB_PROCESSES", default=2)
# Threads of a web process that run Django's sync code, each with its own database connections
# (sagaboard/asgi.py); a request waiting on a database lock holds one up, not the others.
SAGA_WEB_THREADS = env.int("SAGA_WEB_THREADS", default=4)
SAGA_BIND = env.str("SAGA_BIND", default="127.0.0.1")
# --- dashboard (sagaboard/dashboard/) ----------------------------------------------------------------
SAGA_DASHBOARD_STATUS_SECONDS = env.float("SAGA_DASHBOARD_STATUS_SECONDS", default=1.0)
SAGA_DASHBOARD_CONSISTENCY_SECONDS = env.float("SAGA_DASHBOARD_CONSISTENCY_SECONDS", default=2.0)

# --- access (sagaboard/access.py) ---------------------------------------------------------------
SAGA_OPEN_ACCESS = env.bool("SAGA_OPEN_ACCESS", default=DEBUG)
SAGA_READ_REQUIRES_LOGIN = env.bool("SAGA_READ_REQUIRES_LOGIN", default=False)

# --- web --------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "sagaboard.api.exception_handler",
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "sagaboard.schema.ContentNegotiation",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["sagaboard.access.SagaAccess"],
    # the API speaks JSON only (the walkthrough's contract); Daphne itself answers a malformed
    # multipart body with an empty 400 before Django sees it, so the schema must not offer one
    "DEFAULT_PARSER_CLASSES": ["sagaboard.schema.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["sagaboard.schema.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    # the schema's ?version= goes into its Content-Disposition filename (drf-spectacular): only ours
    "ALLOWED_VERSIONS": ["0.1.0"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sagaboard API",
    "DESCRIPTION": "The seed's walkthrough API: points, orders, exchanges, deadlines, transactions, events, consistency, corrections.",
    "VERSION": "0.1.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SERVE_INCLUDE_SCHEMA": False,  # the schema and docs pages describe the API, they are not part of it
}

# --- production security (README "Production mode and access"); on by default when DEBUG=0 -------
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
# behind a TLS-terminating proxy: DJANGO_SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO
_proxy_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="")
SECURE_PROXY_SSL_HEADER = (_proxy_header, "https") if _proxy_header else None
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])
CSRF_FAILURE_VIEW = "sagaboard.api.csrf_failure"  # a 403 in the API's error format (Django's is an HTML page)

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]  # the dashboard's scripts and styles
STATIC_ROOT = env.str("STATIC_ROOT", default=None)  # only for `collectstatic` in production
WHITENOISE_USE_FINDERS = True  # serve static/ without a collectstatic step
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": f"%(asctime)s {env.str('SAGA_PROCESS_NAME', default='-')} %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("SAGA_LOG_LEVEL", default="INFO")},
    "loggers": {"aiokafka": {"level": "WARNING"}},
}
