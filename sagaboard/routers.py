"""Each service app lives in its own database; the saga kernel's tables live in every one."""
from django.conf import settings

KERNEL_APP = "kernel"


class ServiceRouter:
    def _alias(self, model):
        label = model._meta.app_label
        return label if label in settings.SERVICES else None

    def db_for_read(self, model, **hints):
        return self._alias(model)

    def db_for_write(self, model, **hints):
        return self._alias(model)

    def allow_relation(self, a, b, **hints):
        return a._state.db == b._state.db

    def allow_migrate(self, db, app_label, **hints):
        if app_label == KERNEL_APP:
            return db in settings.SERVICES
        if app_label in settings.SERVICES:
            return db == app_label
        return db == "default"
