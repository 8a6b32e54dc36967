"""Partition leases (sagaboard/kernel/leases.py): the processes of one service share the topic's
partitions through leases in their own database, on the real database of the pass (SQLite or
PostgreSQL). The system tests (two processes of every service, SIGKILLs in the soak) prove it
end to end; these pin the rules down one step at a time."""
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from sagaboard.kernel.leases import PartitionLeases, partition_lease
from sagaboard.kernel.models import Lease, ProcessHeartbeat

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)
SERVICE = "exchange"
PARTITIONS = 4


def beat(process: str) -> None:
    """What a live process writes every second (its row counts it in for its peers' shares)."""
    now = timezone.now()
    ProcessHeartbeat.objects.using(SERVICE).update_or_create(
        process=process, defaults=dict(service=SERVICE, pid=1, started_at=now, seen_at=now))


def process(name: str, seconds: float = 3.0) -> PartitionLeases:
    beat(name)
    return PartitionLeases(SERVICE, name, seconds)


def holders() -> dict[str, str]:
    return dict(Lease.objects.using(SERVICE).filter(name__startswith="partition:").values_list("name", "holder"))


def test_a_lone_process_takes_every_partition():
    keep, surplus = process("a").claim(PARTITIONS)
    assert keep == {0, 1, 2, 3} and surplus == set()
    assert set(holders().values()) == {"a"}


def test_a_new_peer_gets_an_equal_share_once_the_holder_releases_its_surplus():
    a = process("a")
    assert a.claim(PARTITIONS)[0] == {0, 1, 2, 3}
    b = process("b")
    assert b.claim(PARTITIONS) == (set(), set())  # nothing free yet: a holds all four, unexpired
    keep, surplus = a.claim(PARTITIONS)  # a now sees b's heartbeat: two live processes
    assert keep == {0, 1} and surplus == {2, 3}
    a.release(surplus)
    assert b.claim(PARTITIONS) == ({2, 3}, set())
    assert a.claim(PARTITIONS) == ({0, 1}, set())  # stable from here on
    assert holders() == {partition_lease(0): "a", partition_lease(1): "a", partition_lease(2): "b", partition_lease(3): "b"}


def test_the_partitions_of_a_process_that_died_go_to_its_peer_when_its_lease_runs_out():
    a, b = process("a", seconds=0.5), process("b", seconds=0.5)
    a.claim(PARTITIONS)
    assert a.claim(PARTITIONS)[0] == {0, 1}
    a.release({2, 3})
    assert b.claim(PARTITIONS)[0] == {2, 3}
    # b dies without a word: no release, no more heartbeats; a keeps renewing its own leases
    time.sleep(0.6)
    beat("a")
    assert a.claim(PARTITIONS) == ({0, 1, 2, 3}, set())
    assert set(holders().values()) == {"a"}


def test_a_live_holder_keeps_its_partitions_and_a_stopping_one_hands_them_over_at_once():
    a, b = process("a"), process("b")
    a.claim(PARTITIONS)
    keep, surplus = a.claim(PARTITIONS)
    a.release(surplus)
    b.claim(PARTITIONS)
    time.sleep(0.1)
    assert a.claim(PARTITIONS)[0] == {0, 1}  # b's leases are live: a takes none of them
    b.release_all()
    ProcessHeartbeat.objects.using(SERVICE).filter(process="b").delete()  # what a stopping process does
    assert a.claim(PARTITIONS) == ({0, 1, 2, 3}, set())


def test_the_relay_lease_is_one_of_them_and_not_a_partition():
    from sagaboard.kernel import leases

    assert leases.take(SERVICE, "relay", "a", 3.0)
    assert not leases.take(SERVICE, "relay", "b", 3.0)
    assert process("b").claim(PARTITIONS)[0] == {0, 1, 2, 3}
    assert Lease.objects.using(SERVICE).get(name="relay").holder == "a"


def test_a_holder_whose_leases_ran_out_and_were_taken_notices_and_a_steady_claim_reads_no_lease():
    """claim() reads the lease table only when its renewal renewed fewer leases than it held (or
    it holds less than its share): a process stalled past its leases, whose peer took some of
    them, must not go on consuming them."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    a = process("a")
    assert a.claim(PARTITIONS) == ({0, 1, 2, 3}, set())
    with CaptureQueriesContext(connections[SERVICE]) as steady:
        assert a.claim(PARTITIONS) == ({0, 1, 2, 3}, set())
    assert len(steady) == 2, [q["sql"] for q in steady]  # renew, and the live processes
    # a stalls: its leases run out and its heartbeat goes stale
    Lease.objects.using(SERVICE).filter(holder="a").update(expires_at=time.time() - 1)
    ProcessHeartbeat.objects.using(SERVICE).filter(process="a").update(seen_at=timezone.now() - timedelta(seconds=10))
    b = process("b")
    assert b.claim(PARTITIONS) == ({0, 1, 2, 3}, set())  # a lone live process takes them all
    beat("a")  # a wakes: its renewal renews none of them
    assert a.claim(PARTITIONS) == (set(), set())
    assert set(holders().values()) == {"b"}
