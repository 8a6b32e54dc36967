from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections


def create_postgres_database(alias: str) -> bool:
    """Create the service's PostgreSQL database if it does not exist yet (migrate cannot)."""
    import psycopg
    from psycopg import sql

    config = settings.DATABASES[alias]
    params = {k: v for k, v in {
        "host": config.get("HOST"), "port": config.get("PORT"), "user": config.get("USER"),
        "password": config.get("PASSWORD"), "dbname": "postgres",
    }.items() if v}
    with psycopg.connect(**params, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [config["NAME"]]).fetchone():
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(config["NAME"])))
        return True


class Command(BaseCommand):
    help = "Create every service's database (PostgreSQL) or file (SQLite) and migrate them all."

    def handle(self, **options):
        settings.SAGA_DATA_DIR.mkdir(parents=True, exist_ok=True)
        for alias in connections:
            if connections[alias].vendor == "postgresql" and create_postgres_database(alias):
                self.stdout.write(f"created database {settings.DATABASES[alias]['NAME']}")
            call_command("migrate", database=alias, interactive=False, verbosity=0)
            self.stdout.write(f"migrated {alias}: {connections[alias].settings_dict['NAME']}")
