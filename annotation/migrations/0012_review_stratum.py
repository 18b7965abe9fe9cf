from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0011_data_version_skip_locked"),
    ]

    operations = [
        migrations.AddField(
            model_name="review",
            name="campaign",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                null=True,
                on_delete=models.deletion.CASCADE,
                related_name="+",
                to="annotation.campaign",
            ),
        ),
        migrations.AddField(
            model_name="review",
            name="flagged",
            field=models.BooleanField(default=False),
        ),
        # Reviews given before these fields existed take their campaign pair's (portable SQL,
        # as in 0007).
        migrations.RunSQL(
            sql="""
                UPDATE annotation_review SET
                    campaign_id = (
                        SELECT cp.campaign_id FROM annotation_campaignpair cp
                        WHERE cp.id = annotation_review.campaign_pair_id
                    ),
                    flagged = (
                        SELECT cp.priority > 0 FROM annotation_campaignpair cp
                        WHERE cp.id = annotation_review.campaign_pair_id
                    )""",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="review",
            name="campaign",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=models.deletion.CASCADE,
                related_name="+",
                to="annotation.campaign",
            ),
        ),
    ]
