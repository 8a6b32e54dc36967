import asyncio
import importlib
import logging
import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

EXIT_FOREIGN_BROKER = 78  # EX_CONFIG of sysexits.h: the configuration points at another instance
EXIT_SOFTWARE = 70  # EX_SOFTWARE: a part of the runtime died (a bug); supervisord starts it again


class Command(BaseCommand):
    help = "Run one saga service (order, exchange, point, deadline, monitor) until SIGTERM or Ctrl-C."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=settings.SERVICES)

    def handle(self, name, **options):
        from sagaboard.kernel.broker import ForeignBroker
        from sagaboard.kernel.consumer import Runtime

        # A service serves no pages, so Django's DEBUG only costs it: every query went through the
        # debug cursor, which on SQLite runs a second query to quote the parameters for the log.
        settings.DEBUG = False

        try:
            service = importlib.import_module(f"services.{name}.saga").service
        except ImportError as exc:
            raise CommandError(f"no saga module for {name}: {exc}") from exc
        runtime = Runtime(service)
        try:
            asyncio.run(runtime.run())
        except ForeignBroker as exc:  # a port clash: never consume or publish on another instance's broker
            logging.getLogger(__name__).critical("%s: %s", name, exc)
            logging.shutdown()
            sys.stderr.flush()
            os._exit(EXIT_FOREIGN_BROKER)
        # Everything that matters is done: offsets committed, relay stopped. A database thread may
        # still wait on a lock for a record the runtime let go of (unacknowledged, so redelivered);
        # the interpreter would join it and outlast supervisord's stop timeout (the soak saw
        # SIGKILLs after "stopped"), so leave now.
        logging.shutdown()
        sys.stdout.flush()
        os._exit(EXIT_SOFTWARE if runtime.failure is not None else 0)
