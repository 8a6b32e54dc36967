from django.contrib import admin

from sagaboard import corrections
from sagaboard.kernel.admin import ReadOnlyAdmin, ReadOnlyInline, ReasonForm, correction_action, ms_time, saga_link

from .models import Order, StatusChange


class StatusChangeInline(ReadOnlyInline):
    model = StatusChange
    fields = ("from_status", "to_status", "event_id", "at")
    readonly_fields = fields


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "saga", "holder_id", "currency_id", "amount", "policy", "status", "reason", "deadline_at", "created_at")
    list_filter = ("status", "policy", "currency_id")
    search_fields = ("=id", "holder_id")
    inlines = [StatusChangeInline]
    actions = ["reject_and_compensate"]

    @admin.display(description="saga", ordering="id")
    def saga(self, order):
        return saga_link(order.id)

    @admin.display(description="deadline (UTC)", ordering="deadline")
    def deadline_at(self, order):
        return ms_time(order.deadline)

    @admin.action(description="Reject and compensate the selected orders (pending or inconsistent)", permissions=["operate"])
    def reject_and_compensate(self, request, queryset):
        def apply(order, data, operator):
            corrections.reject_order(order.pk, operator=operator, reason=data["reason"])
            return f"order {order.pk} rejected by {operator}; exchange and point compensate through the saga"

        return correction_action(self, request, queryset, title="Reject and compensate", form_class=ReasonForm, apply=apply)


@admin.register(StatusChange)
class StatusChangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "saga", "from_status", "to_status", "event_id", "at")
    list_filter = ("to_status",)
    search_fields = ("=order__id", "=event_id")
