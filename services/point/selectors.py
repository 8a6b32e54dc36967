"""Point selectors: reads other parts may make of the point service's data (the HackSoft style:
services write, selectors read)."""
from __future__ import annotations

import threading
from collections import OrderedDict

from .models import Account

KNOWN_HOLDERS_KEPT = 100_000


class KnownHolders:
    """Holders known to have an account. An account is never deleted (admin is read-only, the saga
    only adds and changes balances), so once seen, a holder stays known: POST /orders asks the
    point database only about holders this process has not seen yet (that query was a seventh of
    a POST's cost). Bounded, least recently used first out; safe across the web's threads."""

    def __init__(self, kept: int = KNOWN_HOLDERS_KEPT):
        self.kept = kept
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.lock = threading.Lock()

    def exists(self, holder_id: str) -> bool:
        with self.lock:
            if holder_id in self.seen:
                self.seen.move_to_end(holder_id)
                return True
        if not Account.objects.filter(holder_id=holder_id).exists():
            return False
        with self.lock:
            self.seen[holder_id] = None
            if len(self.seen) > self.kept:
                self.seen.popitem(last=False)
        return True


known_holders = KnownHolders()


def holder_exists(holder_id: str) -> bool:
    """Whether `holder_id` has an account (was ever granted points)."""
    return known_holders.exists(holder_id)
