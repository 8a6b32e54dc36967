from django.contrib import admin

from sagaboard.kernel.admin import ReadOnlyAdmin, saga_link

from .models import Exchange, Tombstone


@admin.register(Exchange)
class ExchangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "saga", "holder_id", "currency_id", "amount", "point", "created_at")
    list_filter = ("currency_id",)
    search_fields = ("=order_id", "holder_id")

    @admin.display(description="order", ordering="order_id")
    def saga(self, exchange):
        return saga_link(exchange.order_id)


@admin.register(Tombstone)
class TombstoneAdmin(ReadOnlyAdmin):
    list_display = ("order_id", "saga", "created_at")
    search_fields = ("=order_id",)

    @admin.display(description="saga")
    def saga(self, tombstone):
        return saga_link(tombstone.order_id)
