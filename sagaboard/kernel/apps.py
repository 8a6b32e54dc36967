from django.apps import AppConfig


class KernelConfig(AppConfig):
    name = "sagaboard.kernel"
    label = "kernel"
    verbose_name = "Saga kernel"
