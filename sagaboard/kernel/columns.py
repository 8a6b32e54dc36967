"""Database columns of the kernel's own types.

PointsColumn: points (kernel/fields.py) stored as whole hundredths in a bigint, so sums, balance
checks (`point__gte`) and F() updates are exact integer arithmetic on SQLite and PostgreSQL alike
(SQLite keeps a DecimalField as a binary float: 0.3 − 0.1 − 0.2 there is not 0). Python sees a
Decimal with two places; a lookup, a save or `add_points` converts it to hundredths.
"""
from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Value

from sagaboard.kernel.fields import POINT_UNIT, points


class PointsColumn(models.BigIntegerField):
    """Points as hundredths in a bigint; Decimal("12.50") in Python (None stays None)."""

    description = "Points (a Decimal with two places, stored as hundredths)"

    def from_db_value(self, value, expression, connection):
        return None if value is None else Decimal(value) * POINT_UNIT

    def to_python(self, value):
        return None if value is None or isinstance(value, Decimal) else points(value)

    def get_prep_value(self, value):
        if value is None or hasattr(value, "resolve_expression"):
            return value
        return int(points(value) / POINT_UNIT)

    def formfield(self, **kwargs):
        return models.DecimalField(max_digits=19, decimal_places=2).formfield(**kwargs)


def add_points(column: str, delta: Decimal):
    """`F(column) + delta` in hundredths, for an UPDATE: `.update(point=add_points("point", -p))`."""
    return F(column) + Value(delta, output_field=PointsColumn())


def hundredths_from_floats(app_label: str, *model_names: str):
    """A migration step for a float `point` column about to become a PointsColumn: each value is
    multiplied by 100 and rounded to a whole hundredth (0.30000000000000004 becomes 30), so the
    AlterField that follows keeps the value and drops the binary noise (issue 11 §2)."""
    from django.db import migrations
    from django.db.models.functions import Round

    def forwards(apps, schema_editor):
        for name in model_names:
            model = apps.get_model(app_label, name)
            model.objects.using(schema_editor.connection.alias).update(point=Round(F("point") * 100))

    def backwards(apps, schema_editor):
        for name in model_names:
            model = apps.get_model(app_label, name)
            model.objects.using(schema_editor.connection.alias).update(point=F("point") / 100.0)

    return migrations.RunPython(forwards, backwards)
