"""The deadline service: arms a durable timer per order and emits DeadlineReached when it fires.

The timer sleeps until the next due time and is woken when a new deadline is armed, so it needs no
polling and no request to wake it (the seed's timer sometimes slept until /deadlines was called).
Firing marks the row fired and writes DeadlineReached in one transaction, so each deadline fires
once even with several deadline processes; overdue ones fire as soon as a process starts.
"""
import asyncio
from concurrent.futures import ThreadPoolExecutor

from django.db import transaction

from sagaboard.kernel import outbox
from sagaboard.kernel.events import Event, now_ms
from sagaboard.kernel.service import Service, ignored

from .models import Deadline

service = Service("deadline", critical_path=False)
# Another process of this service may arm deadlines this one is not told about; look again this
# often so its deadlines still fire if it dies (the process that armed one is woken at once).
PEER_RESCAN_SECONDS = 2.0


class Alarm:
    """Lets the handler thread wake the timer coroutine, when a new deadline falls before the one
    the timer sleeps until (`next_due`, ms; 0 while the timer is looking, so nothing is missed)."""

    loop: asyncio.AbstractEventLoop | None = None
    event: asyncio.Event | None = None
    next_due: float = 0

    @classmethod
    def ring(cls):
        if cls.loop is not None:
            cls.loop.call_soon_threadsafe(cls.event.set)


@service.handles("OrderCreated")
def arm(event, ctx):
    if ctx.has(Deadline):
        return ignored("deadline already armed")
    Deadline.objects.create(order_id=event.orderId, due_at=event.deadline, policy=event.policy, cause_id=event.eventId)
    ctx.effect(deadline="armed", dueAt=event.deadline)
    if event.deadline < Alarm.next_due:
        transaction.on_commit(Alarm.ring, using="deadline")
    return None


@service.handles("OrderPlaced", "OrderRejected")
def disarm(event, ctx):
    if not Deadline.objects.filter(order_id=event.orderId, status=Deadline.ARMED).update(status=Deadline.DISARMED):
        return ignored("no armed deadline")
    ctx.effect(deadline="disarmed")
    return None


def fire_due() -> tuple[int, int | None]:
    """Fire every armed deadline that is due; returns how many fired and the next due time."""
    now = now_ms()
    with transaction.atomic(using="deadline"):
        due = list(
            Deadline.objects.select_for_update(skip_locked=True)
            .filter(status=Deadline.ARMED, due_at__lte=now)
            .order_by("due_at")[:1000]
        )
        for row in due:
            row.status, row.fired_at = Deadline.FIRED, now_ms()
            outbox.emit(
                "deadline",
                Event(
                    eventType="DeadlineReached", orderId=row.order_id, source="deadline", payload={"dueAt": row.due_at},
                    deadline=row.due_at, causationId=str(row.cause_id) if row.cause_id else None, policy=row.policy,
                ),
            )
        Deadline.objects.bulk_update(due, ["status", "fired_at"])
    following = Deadline.objects.filter(status=Deadline.ARMED).order_by("due_at").values_list("due_at", flat=True).first()
    return len(due), following


@service.task
async def timer(runtime):
    Alarm.loop, Alarm.event = asyncio.get_running_loop(), asyncio.Event()
    clock = ThreadPoolExecutor(1, thread_name_prefix="deadline-timer")
    try:
        while not runtime.stopping.is_set():
            Alarm.event.clear()
            Alarm.next_due = 0  # every deadline armed while it looks rings
            fired, following = await asyncio.get_running_loop().run_in_executor(clock, fire_due)
            if fired:
                continue  # more may be due (each DeadlineReached is published after its commit)
            wait = PEER_RESCAN_SECONDS if following is None else min(PEER_RESCAN_SECONDS, (following - now_ms()) / 1000)
            Alarm.next_due = now_ms() + wait * 1000
            if wait > 0:
                waiter = asyncio.create_task(Alarm.event.wait())
                stopper = asyncio.create_task(runtime.stopping.wait())
                await asyncio.wait({waiter, stopper}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
    finally:
        clock.shutdown(wait=True)
