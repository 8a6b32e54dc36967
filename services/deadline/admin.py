from django.contrib import admin

from sagaboard.kernel.admin import ReadOnlyAdmin, ms_time

from .models import Deadline


@admin.register(Deadline)
class DeadlineAdmin(ReadOnlyAdmin):
    list_display = ("id", "saga", "status", "policy", "due", "fired", "lateness_ms", "created_at")
    list_filter = ("status", "policy")
    search_fields = ("=order_id",)

    @admin.display(description="due (UTC)", ordering="due_at")
    def due(self, deadline):
        return ms_time(deadline.due_at)

    @admin.display(description="fired (UTC)", ordering="fired_at")
    def fired(self, deadline):
        return ms_time(deadline.fired_at)

    @admin.display(description="late by (ms)")
    def lateness_ms(self, deadline):
        return "—" if deadline.fired_at is None else deadline.fired_at - deadline.due_at
