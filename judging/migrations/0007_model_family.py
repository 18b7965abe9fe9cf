"""Backfill the model family of the judge and generation configurations recorded before it was
(judging.families: from the model_type where the row has one, else the model id), and let the
agreement dashboard's data version see the two columns its own-family figures now read.

The families are computed here as they are today, not frozen: a family the code learns later
is a new rule for new rows, and the backfill is a one-off for the rows that had none.
"""

from django.db import migrations

from judging.families import model_family

# What the agreement dashboard's own-family figures read beyond the tables annotation's 0010
# watches: a configuration's family and a response's model name. Statement triggers bump the
# data version as those of 0010 do (PostgreSQL only; SQLite checksums the data instead).
WATCHED = {
    "judging_judgeconfiguration": ("model_family",),
    "annotation_response": ("model_name",),
}


def backfill(apps, schema_editor):
    JudgeConfiguration = apps.get_model("judging", "JudgeConfiguration")
    GenerationConfiguration = apps.get_model("judging", "GenerationConfiguration")
    for configuration in JudgeConfiguration.objects.filter(model_family="").only("model_id"):
        if family := model_family(configuration.model_id):
            configuration.model_family = family
            configuration.save(update_fields=["model_family"])
    rows = GenerationConfiguration.objects.filter(model_family="").only("model_id", "model_type")
    for configuration in rows:
        if family := model_family(configuration.model_id, configuration.model_type):
            configuration.model_family = family
            configuration.save(update_fields=["model_family"])


def add_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, columns in WATCHED.items():
        schema_editor.execute(
            f"CREATE TRIGGER {table}_data_version"
            f" AFTER INSERT OR UPDATE OF {', '.join(columns)} OR DELETE OR TRUNCATE ON {table}"
            " FOR EACH STATEMENT EXECUTE FUNCTION annotation_bump_data_version()"
        )


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in WATCHED:
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {table}_data_version ON {table}")


class Migration(migrations.Migration):
    dependencies = [
        ("judging", "0006_generation_runs"),
        # annotation_bump_data_version(), and its skip-locked form.
        ("annotation", "0011_data_version_skip_locked"),
    ]

    operations = [
        migrations.RunPython(add_triggers, drop_triggers),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
