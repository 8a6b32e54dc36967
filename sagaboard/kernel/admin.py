"""Admin pieces every service's admin uses, and the kernel's own tables (in every service database).

Every table is read-only in admin: an edit by hand would break what the saga keeps consistent.
Changes go through corrections (sagaboard/corrections.py), offered as admin actions that ask for
a reason and record the operator. Service models are routed to their own database by
sagaboard/routers.py; the kernel's tables exist once per service database, so their pages have a
"service" filter that picks the database to read.
"""
from __future__ import annotations

from datetime import UTC, datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ERROR_FLAG
from django.db import DataError
from django.http import HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.utils.html import format_html

from sagaboard import corrections
from sagaboard.access import may_operate
from sagaboard.kernel import fields

from .models import DeadLetter, InboxRecord, Lease, OutboxMessage, ProcessHeartbeat

SERVICE_PARAM = "service"


def saga_link(order_id):
    """The order's page on the dashboard (DESIGN.md section 8)."""
    if order_id is None:
        return "—"
    return format_html('<a href="/sagas/{}/">{} ↗</a>', order_id, order_id)


def ms_time(value):
    """Milliseconds since the epoch, as a readable UTC time."""
    if value is None:
        return "—"
    return datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


class ReadOnlyAdmin(admin.ModelAdmin):
    """Look, filter, search; never edit by hand (use a correction)."""

    list_per_page = 50

    def changelist_view(self, request, extra_context=None):
        """Django's list, except that an id no database holds (past bigint, or not a number) in a
        filter or among the rows an action is given gets Django's own answer to an incorrect
        lookup (a redirect to ?e=1), where it was a 500 (OverflowError on SQLite, DataError on
        PostgreSQL, ValueError for "abc")."""
        try:
            return super().changelist_view(request, extra_context)
        except (OverflowError, ValueError, DataError):
            return HttpResponseRedirect(f"{request.path}?{ERROR_FLAG}=1")

    @admin.display(description="order", ordering="order_id")
    def saga(self, row):
        """The row's order, linked to its dashboard page (list "saga" in list_display)."""
        return saga_link(row.order_id)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_operate_permission(self, request):
        """Corrections: staff (admin already requires it) allowed by sagaboard.access."""
        return request.user.is_staff and may_operate(request.user)


class TombstoneAdmin(ReadOnlyAdmin):
    """Exchange's and point's memory of compensated orders (both services register it)."""

    list_display = ("order_id", "saga", "created_at")
    search_fields = ("=order_id",)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class RuleFormField(forms.CharField):
    """A form field checked by one rule of sagaboard/kernel/fields.py, the API's rule too: its
    FieldInvalid is the form's error. Nothing is stripped before the rule (ids are never trimmed)."""

    def __init__(self, rule, **kwargs):
        self.rule = rule
        super().__init__(strip=False, **kwargs)

    def clean(self, value):
        value = super().clean(value)
        if value in self.empty_values:
            return None
        try:
            return self.rule(value)
        except fields.FieldInvalid as exc:
            raise forms.ValidationError(str(exc)) from None


class ReasonForm(forms.Form):
    reason = RuleFormField(fields.reason, widget=forms.TextInput(attrs={"size": 80}),
                           help_text="Required: why, for the order's timeline and the record.")


def correction_action(modeladmin, request, queryset, *, title: str, form_class, apply):
    """An admin action that asks for a reason (and whatever `form_class` adds) on a page of its
    own, then calls `apply(obj, cleaned_data, operator)` -> message for each selected row."""
    form = form_class(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        operator = corrections.operator_name(request.user)
        for obj in queryset:
            try:
                message = apply(obj, form.cleaned_data, operator)
            except corrections.CorrectionRefused as exc:
                modeladmin.message_user(request, str(exc), messages.ERROR)
                continue
            modeladmin.log_change(request, obj, message)
            modeladmin.message_user(request, message, messages.SUCCESS)
        return None  # back to the list, with the messages
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "opts": modeladmin.model._meta,
        "form": form,
        "objects": list(queryset[:100]),
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/sagaboard/correction.html", context)


# --- the kernel's tables, one copy per service database ----------------------------------------------
def chosen_service(request) -> str:
    service = request.GET.get(SERVICE_PARAM)
    if service is None:  # a change page keeps its list's filters in _changelist_filters
        service = QueryDict(request.GET.get("_changelist_filters", "")).get(SERVICE_PARAM)
    return service if service in settings.SERVICES else settings.SERVICES[0]


class ServiceFilter(admin.SimpleListFilter):
    """Which service's database to read (there is no "all": each service keeps its own rows)."""

    title = "service"
    parameter_name = SERVICE_PARAM

    def lookups(self, request, model_admin):
        return [(s, s) for s in settings.SERVICES]

    def queryset(self, request, queryset):
        return queryset  # PerServiceAdmin.get_queryset already reads the chosen database

    def choices(self, changelist):
        current = self.value() if self.value() in settings.SERVICES else settings.SERVICES[0]
        for value, title in self.lookup_choices:
            yield {
                "selected": value == current,
                "query_string": changelist.get_query_string({self.parameter_name: value}),
                "display": title,
            }


class PerServiceAdmin(ReadOnlyAdmin):
    def get_list_filter(self, request):
        return [ServiceFilter, *self.list_filter]

    def get_queryset(self, request):
        return super().get_queryset(request).using(chosen_service(request))

    def changelist_view(self, request, extra_context=None):
        title = f"{self.model._meta.verbose_name_plural.capitalize()} of the {chosen_service(request)} service"
        return super().changelist_view(request, {"title": title, **(extra_context or {})})


@admin.register(OutboxMessage)
class OutboxAdmin(PerServiceAdmin):
    list_display = ("id", "event_type", "saga", "key", "created_at", "published_at")
    list_filter = ("event_type", ("published_at", admin.EmptyFieldListFilter))
    search_fields = ("=order_id", "=event_id", "key")
    exclude = ("body",)
    readonly_fields = ("text",)

    @admin.display(description="event")
    def text(self, row):
        return bytes(row.body).decode("utf-8", "replace")


@admin.register(InboxRecord)
class InboxAdmin(PerServiceAdmin):
    list_display = ("id", "event_type", "saga", "outcome", "reason", "partition", "offset", "handled_at")
    list_filter = ("outcome", "event_type")
    search_fields = ("=order_id", "=event_id", "reason")


@admin.register(DeadLetter)
class DeadLetterAdmin(PerServiceAdmin):
    list_display = ("id", "topic", "partition", "offset", "short_error", "created_at", "replayed_at", "replayed_by")
    list_filter = (("replayed_at", admin.EmptyFieldListFilter),)
    search_fields = ("error", "replayed_by")
    exclude = ("key", "value")
    readonly_fields = ("text",)
    actions = ["replay"]

    @admin.display(description="error")
    def short_error(self, letter):
        return letter.error if len(letter.error) <= 120 else letter.error[:119] + "…"

    @admin.display(description="value (as text)")
    def text(self, letter):
        return bytes(letter.value).decode("utf-8", "replace") if letter.value is not None else "—"

    @admin.action(description="Replay the selected dead letters (re-deliver through the topic)", permissions=["operate"])
    def replay(self, request, queryset):
        service = queryset.db

        def apply(letter, data, operator):
            event = corrections.replay_dead_letter(service, letter.pk, operator=operator, reason=data["reason"])
            return f"{event.eventType} {event.eventId} of order {event.orderId} re-delivered from {service}'s dead letters"

        return correction_action(self, request, queryset, title=f"Replay dead letters of the {service} service",
                                 form_class=ReasonForm, apply=apply)


@admin.register(ProcessHeartbeat)
class HeartbeatAdmin(PerServiceAdmin):
    list_display = ("process", "service", "pid", "started_at", "seen_at", "assignment", "lag", "handled", "parked_since")


@admin.register(Lease)
class LeaseAdmin(PerServiceAdmin):
    list_display = ("name", "holder", "expires")

    @admin.display(description="expires at")
    def expires(self, lease):
        return ms_time(lease.expires_at * 1000)
