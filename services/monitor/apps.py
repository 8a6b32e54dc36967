from django.apps import AppConfig


class MonitorConfig(AppConfig):
    name = "services.monitor"
    label = "monitor"
