"""Gunicorn entry point: ``gunicorn 'o2c_workers.wsgi:create_app()'``."""

from __future__ import annotations

from o2c_workers.receiver.app import Receiver, create_receiver


def create_app() -> Receiver:
    from config import get_settings
    from o2c_workers import logs

    settings = get_settings()
    logs.configure(level=settings.log_level, json_lines=settings.log_json)
    logs.skip_unused_record_fields()
    return create_receiver(settings)
