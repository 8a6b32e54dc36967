import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from sagaboard import supervision
from sagaboard.kernel import faults


def fault_environment(duplicate_rate: float | None, crashes: list[str] | None, ledger: str | None) -> dict[str, str]:
    """The SAGA_FAULT_* variables the options ask for, checked here so a typo fails at once."""
    env = {}
    if duplicate_rate is not None:
        if not 0 <= duplicate_rate <= 1:
            raise CommandError("--duplicate-rate is a fraction between 0 and 1")
        env["SAGA_FAULT_DUPLICATE_RATE"] = str(duplicate_rate)
    if crashes:
        spec = ",".join(crashes)
        try:
            rates = faults.parse_crashes(spec)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if not all(0 <= rate <= 1 for rate in rates.values()):
            raise CommandError("--crash rates are probabilities between 0 and 1")
        env["SAGA_FAULT_CRASH"] = spec
    if ledger:
        env["SAGA_FAULT_LEDGER"] = str(Path(ledger).resolve())
    return env


class Command(BaseCommand):
    help = "Set up the databases and run everything (broker, services, monitor, web) under supervisord."

    def add_arguments(self, parser):
        parser.add_argument("--replicas", type=int, default=int(os.environ.get("SAGA_REPLICAS", "1")),
                            help="processes per service, sharing the partitions (leases in their database)")
        faults_group = parser.add_argument_group("fault injection (for the services; default: the environment)")
        faults_group.add_argument("--duplicate-rate", type=float, metavar="FRACTION",
                                  help="publish this fraction of events twice (SAGA_FAULT_DUPLICATE_RATE)")
        faults_group.add_argument("--crash", action="append", metavar="[SERVICE.]POINT:RATE",
                                  help="os._exit at a crash point with this probability; repeatable "
                                       f"(SAGA_FAULT_CRASH; points: {', '.join(faults.CRASH_POINTS)})")
        faults_group.add_argument("--fault-ledger", metavar="FILE",
                                  help="append a line per injected fault to FILE (SAGA_FAULT_LEDGER)")

    def handle(self, replicas, **options):
        service_env = fault_environment(options["duplicate_rate"], options["crash"], options["fault_ledger"])
        self.claim_ports()
        call_command("setupdb", verbosity=0)
        conf = supervision.config_path()
        conf.write_text(supervision.config(replicas, service_env))
        broker = "embedded Tansu broker" if settings.SAGA_EMBEDDED_BROKER else "external Kafka"
        rows = [("broker", f"{broker} at {settings.KAFKA_BOOTSTRAP_SERVERS}, topic {settings.SAGA_TOPIC}")]
        for name in supervision.PROGRAMS:
            db = settings.DATABASES[name]
            where = db["NAME"] if db["ENGINE"].endswith("sqlite3") else f"postgresql {db['HOST']}/{db['NAME']}"
            rows.append((name, f"{replicas} process(es), database {where}"))
        rows.append(("web", f"http://{settings.SAGA_BIND}:{settings.PORT}/  (API, admin, dashboard)"))
        self.stdout.write("Sagaboard is starting:")
        for name, what in rows:
            self.stdout.write(f"  {name:<9} {what}")
        if service_env:
            self.stdout.write("  faults    " + " ".join(f"{key}={value}" for key, value in service_env.items()))
        self.stdout.write(f"  control   {supervision.control_hint()}   Ctrl-C stops everything.")
        self.stdout.flush()
        supervisord = Path(sys.executable).with_name("supervisord")
        os.execv(supervisord, [str(supervisord), "-c", str(conf)])

    def claim_ports(self) -> None:
        """This instance's data directory, web port and broker port must be its own: a second
        Sagaboard on the same machine never joins the first's broker or shares its socket.

        Raises CommandError (exit 1) when this data directory's Sagaboard already runs, when the
        web port is taken, or when SAGA_BROKER_PORT was given and is taken; a default broker port
        that is taken is replaced by a free one, which the processes inherit and the banner shows."""
        if supervision.running_here():
            raise CommandError(
                f"Sagaboard already runs from {settings.SAGA_DATA_DIR} ({settings.SAGA_SUPERVISOR_SOCKET} answers): "
                "stop it first (Ctrl-C in its terminal), or give this one another SAGA_DATA_DIR")
        if supervision.port_in_use(settings.SAGA_BIND, settings.PORT):
            raise CommandError(f"port {settings.PORT} on {settings.SAGA_BIND} is in use (another Sagaboard, or another "
                               f"server): choose another with PORT, e.g. PORT={settings.PORT + 1} make run")
        if settings.SAGA_EMBEDDED_BROKER and supervision.port_in_use("127.0.0.1", settings.SAGA_BROKER_PORT):
            if "SAGA_BROKER_PORT" in os.environ:
                raise CommandError(
                    f"the broker port {settings.SAGA_BROKER_PORT} (SAGA_BROKER_PORT) on 127.0.0.1 is in use (another "
                    f"Sagaboard's broker?): choose another, e.g. SAGA_BROKER_PORT={settings.SAGA_BROKER_PORT + 1}")
            taken, port = settings.SAGA_BROKER_PORT, supervision.free_port()
            os.environ["SAGA_BROKER_PORT"] = str(port)  # every process supervisord starts inherits it
            settings.SAGA_BROKER_PORT, settings.KAFKA_BOOTSTRAP_SERVERS = port, f"127.0.0.1:{port}"
            self.stdout.write(f"The broker port {taken} is in use (another Sagaboard?); this one's broker takes {port}.")
