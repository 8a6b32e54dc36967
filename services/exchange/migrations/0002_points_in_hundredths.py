# Points become exact: float values to whole hundredths, then bigint columns (PointsColumn).

from django.db import migrations

import sagaboard.kernel.columns


class Migration(migrations.Migration):

    dependencies = [
        ('exchange', '0001_initial'),
    ]

    operations = [
        # float points to whole hundredths first (issue 11 §2), then the column type
        sagaboard.kernel.columns.hundredths_from_floats("exchange", "exchange"),
        migrations.AlterField(
            model_name='exchange',
            name='point',
            field=sagaboard.kernel.columns.PointsColumn(help_text='amount × SAGA_EXCHANGE_RATE, rounded to 0.01 half to even'),
        ),
    ]
