from django.apps import AppConfig


class OrderConfig(AppConfig):
    name = "services.order"
    label = "order"
