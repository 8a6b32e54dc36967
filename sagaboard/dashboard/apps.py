from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "sagaboard.dashboard"
    label = "dashboard"
