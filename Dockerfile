# Sagaboard's one image: the web server (the default command) and, with another command, each saga
# service (`python manage.py runservice order`) or the database setup (`python manage.py setupdb`).
# Production mode by default: DJANGO_DEBUG=0, so DJANGO_SECRET_KEY must be given at run time.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_DEBUG=0 \
    SAGA_DATA_DIR=/app/var

WORKDIR /app

# The dependencies first, pinned in pyproject.toml (the project itself has no packages to install),
# so that a change of the code does not reinstall them.
COPY pyproject.toml ./
RUN pip install .

COPY . .
RUN useradd --system --uid 10001 --no-create-home --home-dir /app sagaboard \
    && mkdir -p /app/var \
    && chown sagaboard /app/var
USER sagaboard

EXPOSE 8088
CMD ["python", "-m", "daphne", "-v", "0", "-b", "0.0.0.0", "-p", "8088", "sagaboard.asgi:application"]
