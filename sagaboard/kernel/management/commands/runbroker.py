import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sagaboard.kernel.broker import new_epoch, tansu_command
from sagaboard.supervision import port_in_use


class Command(BaseCommand):
    help = "Run the embedded Kafka-protocol broker (Tansu, in memory) on 127.0.0.1:SAGA_BROKER_PORT."

    def handle(self, **options):
        if not settings.SAGA_EMBEDDED_BROKER:
            raise CommandError(f"KAFKA_BOOTSTRAP_SERVERS is set ({settings.KAFKA_BOOTSTRAP_SERVERS}); no broker to run")
        port = settings.SAGA_BROKER_PORT
        # Tansu 0.6.0 panics on a port in use and exits 0, which supervisord takes for a clean stop
        if port_in_use("127.0.0.1", port):
            raise CommandError(f"port {port} on 127.0.0.1 is in use (another Sagaboard's broker?): "
                               f"choose another with SAGA_BROKER_PORT, e.g. SAGA_BROKER_PORT={port + 1}")
        command = tansu_command(port, settings.SAGA_CLUSTER_ID)
        new_epoch()  # the dashboard's feed reads the topic from its start again (a new, empty log)
        os.execv(command[0], command)  # become the broker, so signals reach it directly
