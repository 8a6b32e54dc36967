from django.contrib import admin

from sagaboard.kernel.admin import ReadOnlyAdmin, ms_time

from .models import EventLog


@admin.register(EventLog)
class EventLogAdmin(ReadOnlyAdmin):
    list_display = ("id", "event_type", "saga", "source", "policy", "at", "partition", "offset", "short_payload")
    list_filter = ("event_type", "source", "policy")
    search_fields = ("=order_id", "=event_id", "=causation_id")

    @admin.display(description="timestamp (UTC)", ordering="timestamp")
    def at(self, event):
        return ms_time(event.timestamp)

    @admin.display(description="payload")
    def short_payload(self, event):
        text = str(event.payload)
        return text if len(text) <= 100 else text[:99] + "…"
