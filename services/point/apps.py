from django.apps import AppConfig


class PointConfig(AppConfig):
    name = "services.point"
    label = "point"
