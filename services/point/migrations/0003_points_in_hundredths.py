# Points become exact: float values to whole hundredths, then bigint columns (PointsColumn).

from django.db import migrations

import sagaboard.kernel.columns


class Migration(migrations.Migration):

    dependencies = [
        ('point', '0002_operator_corrections'),
    ]

    operations = [
        # float points to whole hundredths first (issue 11 §2), then the column type
        sagaboard.kernel.columns.hundredths_from_floats("point", "account", "adjustment", "grant", "spend"),
        migrations.AlterField(
            model_name='account',
            name='point',
            field=sagaboard.kernel.columns.PointsColumn(default=0),
        ),
        migrations.AlterField(
            model_name='adjustment',
            name='point',
            field=sagaboard.kernel.columns.PointsColumn(help_text='added to the balance; negative takes points away'),
        ),
        migrations.AlterField(
            model_name='grant',
            name='point',
            field=sagaboard.kernel.columns.PointsColumn(),
        ),
        migrations.AlterField(
            model_name='spend',
            name='point',
            field=sagaboard.kernel.columns.PointsColumn(),
        ),
    ]
