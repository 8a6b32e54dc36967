import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from sagaboard import supervision


class Command(BaseCommand):
    help = "Set up the databases and run everything (broker, services, monitor, web) under supervisord."

    def add_arguments(self, parser):
        parser.add_argument("--replicas", type=int, default=int(os.environ.get("SAGA_REPLICAS", "1")),
                            help="processes per service, sharing the work through their consumer group")

    def handle(self, replicas, **options):
        call_command("setupdb", verbosity=0)
        conf = settings.SAGA_DATA_DIR / "supervisord.conf"
        conf.write_text(supervision.config(replicas))
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
        self.stdout.write(f"  control   {supervision.control_hint()}   Ctrl-C stops everything.")
        self.stdout.flush()
        supervisord = Path(sys.executable).with_name("supervisord")
        os.execv(supervisord, [str(supervisord), "-c", str(conf)])
