"""The suite's own rule (the project's standards): two runs on one machine never meet, so each
run's test databases are its own (tests/conftest.py, django_db_modify_db_settings)."""
import os
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections


@pytest.mark.django_db(databases="__all__")
def test_this_runs_databases_are_named_for_it_alone(tmp_path_factory):
    """PostgreSQL: every test database ends in this process's id; SQLite: every file lies in this
    run's pytest temporary directory, not in the checkout's var/."""
    base = tmp_path_factory.getbasetemp().resolve()
    for alias in settings.DATABASES:
        name = connections[alias].settings_dict["NAME"]
        if connections[alias].vendor == "sqlite":
            assert Path(name).resolve().is_relative_to(base), (alias, name)
        else:
            assert name.startswith("test_") and name.endswith(f"_{os.getpid()}"), (alias, name)
        assert connections[alias].cursor()  # and it is the database the tests use
