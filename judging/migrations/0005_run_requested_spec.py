"""A run records the judge asked for; its configuration is resolved later by a worker.

Runs from before this migration were started by loading the judge, so what they loaded is the
best record of what was asked for: their requested spec is copied from their configuration.
"""

import django.db.models.deletion
from django.db import migrations, models


def copy_spec_from_configuration(apps, schema_editor):
    JudgeRun = apps.get_model("judging", "JudgeRun")
    for run in JudgeRun.objects.select_related("configuration").iterator():
        configuration = run.configuration
        run.backend = configuration.backend
        run.model = configuration.model_id
        run.revision = configuration.model_revision
        run.dtype = configuration.dtype
        run.max_pixels = configuration.max_pixels
        run.guard_model = configuration.guard_model_id
        run.save(
            update_fields=["backend", "model", "revision", "dtype", "max_pixels", "guard_model"]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("judging", "0004_job_heartbeats"),
    ]

    operations = [
        migrations.AddField(
            model_name="judgerun",
            name="backend",
            field=models.CharField(
                choices=[
                    ("baseline", "baseline (heuristics, no model)"),
                    ("transformers", "transformers (vision-language model)"),
                ],
                default="baseline",
                max_length=16,
            ),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="judgerun",
            name="model",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.AddField(
            model_name="judgerun",
            name="revision",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name="judgerun",
            name="dtype",
            field=models.CharField(blank=True, max_length=20),
        ),
        migrations.AddField(
            model_name="judgerun",
            name="max_pixels",
            field=models.PositiveIntegerField(default=200704),
        ),
        migrations.AddField(
            model_name="judgerun",
            name="guard_model",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.RunPython(copy_spec_from_configuration, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="judgerun",
            name="configuration",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="judging.judgeconfiguration",
            ),
        ),
        migrations.AddConstraint(
            model_name="judgerun",
            constraint=models.CheckConstraint(
                condition=models.Q(("backend", "transformers"), ("model", ""), _negated=True),
                name="judge_run_transformers_has_model",
            ),
        ),
    ]
