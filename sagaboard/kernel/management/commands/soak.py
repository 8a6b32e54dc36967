from django.core.management.base import BaseCommand, CommandError

from sagaboard.soak import Soak, SoakOptions


class Command(BaseCommand):
    help = ("Chaos soak: run the whole system, place orders while injecting duplicates and crashes and "
            "SIGKILLing service processes, let it settle, check every invariant and report. Exits 1 on "
            "any violation. Needs fresh databases (SAGA_DATA_DIR / DATABASE_URL without orders).")

    def add_arguments(self, parser):
        d = SoakOptions()
        parser.add_argument("--orders", type=int, default=d.orders, help="orders to place")
        parser.add_argument("--rate", type=float, default=d.rate, help="orders per second")
        parser.add_argument("--holders", type=int, default=d.holders, help="point holders the orders come from")
        parser.add_argument("--naive-fraction", type=float, default=d.naive_fraction,
                            help="fraction of holders whose orders use the naive policy")
        parser.add_argument("--duplicate-rate", type=float, default=d.duplicate_rate, help="fraction of events published twice")
        parser.add_argument("--crash", action="append", metavar="[SERVICE.]POINT:RATE",
                            help=f"crash point, repeatable (default {','.join(d.crashes)}; 'none' for none)")
        parser.add_argument("--kill-every", type=float, default=d.kill_every,
                            help="seconds between SIGKILLs of a random service process (0: none)")
        parser.add_argument("--stop-every", type=int, default=d.stop_every,
                            help="every Nth chaos round stops a service on purpose instead of a kill (0: never)")
        parser.add_argument("--time-limit", type=float, default=d.time_limit, help="seconds of placing orders at most")
        parser.add_argument("--settle-limit", type=float, default=d.settle_limit, help="seconds to wait for everything to settle")
        parser.add_argument("--replicas", type=int, default=d.replicas, help="processes per service")
        parser.add_argument("--partitions", type=int, default=d.partitions, help="partitions of the topic")
        parser.add_argument("--deadline-seconds", type=float, default=d.deadline_seconds, help="an order's deadline")
        parser.add_argument("--seed", type=int, help="random seed, to replay a soak's choices")

    def handle(self, **o):
        crashes = o["crash"] if o["crash"] is not None else SoakOptions().crashes
        options = SoakOptions(
            orders=o["orders"], rate=o["rate"], holders=o["holders"], naive_fraction=o["naive_fraction"],
            duplicate_rate=o["duplicate_rate"], crashes=[c for c in crashes if c != "none"], kill_every=o["kill_every"],
            stop_every=o["stop_every"], time_limit=o["time_limit"], settle_limit=o["settle_limit"],
            replicas=o["replicas"], partitions=o["partitions"], deadline_seconds=o["deadline_seconds"], seed=o["seed"],
        )
        if options.orders < 1 or options.rate <= 0 or options.holders < 1:
            raise CommandError("--orders, --rate and --holders must be positive")
        try:
            code = Soak(options, self.stdout).run()
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        if code:
            raise SystemExit(code)
