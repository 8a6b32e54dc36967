from django.contrib import admin

from sagaboard.kernel.admin import ReadOnlyAdmin, TombstoneAdmin

from .models import Exchange, Tombstone


@admin.register(Exchange)
class ExchangeAdmin(ReadOnlyAdmin):
    list_display = ("id", "saga", "holder_id", "currency_id", "amount", "point", "created_at")
    list_filter = ("currency_id",)
    search_fields = ("=order_id", "holder_id")


admin.site.register(Tombstone, TombstoneAdmin)
