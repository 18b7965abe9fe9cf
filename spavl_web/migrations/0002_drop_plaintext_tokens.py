"""DRF's own tokens were stored in clear (``authtoken_token``); they are replaced by hashed
ApiTokens, so the old table and every secret in it go."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("spavl_web", "0001_initial")]

    operations = [
        migrations.RunSQL("DROP TABLE IF EXISTS authtoken_token", migrations.RunSQL.noop),
    ]
