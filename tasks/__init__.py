"""Celery entry point: ``celery -A tasks worker`` and ``celery -A tasks beat``."""

from tasks.app import app

__all__ = ["app"]
