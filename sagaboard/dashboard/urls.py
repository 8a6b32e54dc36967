from django.urls import path, re_path

from sagaboard import schema  # noqa: F401  (registers the order_id path converter)

from . import views

app_name = "dashboard"
urlpatterns = [
    path("", views.board_page, name="board"),
    path("sagas/<order_id:order_id>/", views.saga_page, name="saga"),
    path("sagas/<order_id:order_id>/compare/<order_id:other_id>/", views.compare_page, name="compare"),
    path("events/", views.events_page, name="events"),
    path("dashboard/board.json", views.board_json, name="board-json"),
    path("dashboard/sagas/<order_id:order_id>.json", views.saga_json, name="saga-json"),
    path("dashboard/services.json", views.services_json, name="services-json"),
    path("dashboard/consistency.json", views.consistency_json, name="consistency-json"),
    re_path(r"^dashboard/services/(?P<name>[a-z]+)/(?P<action>stop|start)$", views.service_control, name="service-control"),
    path("dashboard/scenarios/<slug:name>", views.launch_scenario, name="scenario"),
]
