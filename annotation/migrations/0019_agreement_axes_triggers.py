"""Let the agreement dashboard's data version see the per-response safety labels its axis and
guard figures now read. The new review and pair columns (the axes, per-response final labels)
need nothing: 0010 watches every column of annotation_review and annotation_pair. Statement
triggers as 0010's (PostgreSQL only; SQLite checksums the data instead).
"""

from django.db import migrations

WATCHED = ("annotation_responsesafetylabel",)


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in WATCHED:
        schema_editor.execute(
            f"CREATE TRIGGER {table}_data_version"
            f" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION annotation_bump_data_version()"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in WATCHED:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0018_two_axis_reviews"),
    ]

    operations = [
        migrations.RunPython(add_triggers, drop_triggers),
    ]
