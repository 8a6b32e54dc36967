from decimal import Decimal

from django.conf import settings
from django.contrib import admin

from sagaboard import corrections
from sagaboard.kernel import fields
from sagaboard.kernel.admin import ReadOnlyAdmin, ReasonForm, RuleFormField, TombstoneAdmin, correction_action

from .models import Account, Adjustment, Grant, Spend, Tombstone


class AdjustForm(ReasonForm):
    point = RuleFormField(
        lambda value: fields.points(value, lowest=-Decimal(settings.SAGA_MAX_AMOUNT), highest=Decimal(settings.SAGA_MAX_AMOUNT), nonzero=True),
        help_text="Added to the balance; negative takes points away (never below 0). At most two decimal places.")
    order_id = RuleFormField(fields.order_id, required=False, label="Order id",
                           help_text="Optional: the order this corrects (the adjustment shows on its timeline).")
    field_order = ["point", "order_id", "reason"]


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("holder_id", "point")
    search_fields = ("holder_id",)
    actions = ["adjust_balance"]

    @admin.action(description="Adjust the balance of the selected holders (with a reason)", permissions=["operate"])
    def adjust_balance(self, request, queryset):
        def apply(account, data, operator):
            event = corrections.adjust_balance(account.holder_id, data["point"], operator=operator, reason=data["reason"],
                                               order_id=data["order_id"])
            sign = "+" if data["point"] > 0 else ""
            return f"PointsAdjusted {sign}{fields.format_points(data['point'])} for {account.holder_id} emitted ({event.eventId}); the point service applies it"

        return correction_action(self, request, queryset, title="Adjust balance", form_class=AdjustForm, apply=apply)


@admin.register(Grant)
class GrantAdmin(ReadOnlyAdmin):
    list_display = ("id", "holder_id", "point", "event_id", "created_at")
    search_fields = ("holder_id", "=event_id")


@admin.register(Adjustment)
class AdjustmentAdmin(ReadOnlyAdmin):
    list_display = ("id", "holder_id", "point", "operator", "reason", "saga", "created_at")
    list_filter = ("operator",)
    search_fields = ("holder_id", "=order_id", "operator", "reason")


@admin.register(Spend)
class SpendAdmin(ReadOnlyAdmin):
    list_display = ("id", "saga", "holder_id", "point", "created_at", "refunded_at")
    list_filter = (("refunded_at", admin.EmptyFieldListFilter),)
    search_fields = ("=order_id", "holder_id")


admin.site.register(Tombstone, TombstoneAdmin)
