from django.apps import AppConfig


class DeadlineConfig(AppConfig):
    name = "services.deadline"
    label = "deadline"
