# Meridian's one image: the console (gunicorn), the workers, beat and the migrate step
# differ only by command (compose.yaml, deploy/systemd). No dev dependencies.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MERIDIAN_TEMPLATES_DIR=/app/templates

WORKDIR /app
COPY pyproject.toml README.md ./
COPY campaigns ./campaigns
COPY tasks ./tasks
COPY templates ./templates
RUN pip install ".[production]" \
 && useradd --system --uid 10001 --user-group --home-dir /app --no-create-home meridian

# Never root: nothing in /app is writable by the process that serves it.
USER meridian

EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
CMD ["gunicorn", "-c", "python:campaigns.web.gunicorn_conf", "campaigns.web.wsgi:app", "--bind", "0.0.0.0:8000", "--workers", "2", "--threads", "4"]
