import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sagaboard.kernel.broker import tansu_command


class Command(BaseCommand):
    help = "Run the embedded Kafka-protocol broker (Tansu, in memory) on 127.0.0.1:SAGA_BROKER_PORT."

    def handle(self, **options):
        if not settings.SAGA_EMBEDDED_BROKER:
            raise CommandError(f"KAFKA_BOOTSTRAP_SERVERS is set ({settings.KAFKA_BOOTSTRAP_SERVERS}); no broker to run")
        command = tansu_command(settings.SAGA_BROKER_PORT)
        os.execv(command[0], command)  # become the broker, so signals reach it directly
