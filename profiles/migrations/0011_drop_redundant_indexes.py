"""Drop single-column indexes that a composite index already leads with.

Only the indexes go (same names on SQLite and PostgreSQL); the foreign keys stay as they are,
so no table is rebuilt and no constraint is validated again.
"""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("profiles", "0010_mergelog_survivor_kept_after_a_later_merge"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_event_profile_id_cda6b68a"',
                    'CREATE INDEX IF NOT EXISTS "profiles_event_profile_id_cda6b68a" ON "profiles_event" ("profile_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_event_source_id_168f5aad"',
                    'CREATE INDEX IF NOT EXISTS "profiles_event_source_id_168f5aad" ON "profiles_event" ("source_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_identity_profile_id_66c2e55a"',
                    'CREATE INDEX IF NOT EXISTS "profiles_identity_profile_id_66c2e55a" ON "profiles_identity" ("profile_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_identity_source_record_id_4b402fbb"',
                    'CREATE INDEX IF NOT EXISTS "profiles_identity_source_record_id_4b402fbb" ON "profiles_identity" ("source_record_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_rawrecord_import_run_id_8dda9792"',
                    'CREATE INDEX IF NOT EXISTS "profiles_rawrecord_import_run_id_8dda9792" ON "profiles_rawrecord" ("import_run_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_rawrecord_source_id_18fd5591"',
                    'CREATE INDEX IF NOT EXISTS "profiles_rawrecord_source_id_18fd5591" ON "profiles_rawrecord" ("source_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_sourcerecord_profile_id_11fba6c4"',
                    'CREATE INDEX IF NOT EXISTS "profiles_sourcerecord_profile_id_11fba6c4" ON "profiles_sourcerecord" ("profile_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "profiles_sourcerecord_source_id_0186e12b"',
                    'CREATE INDEX IF NOT EXISTS "profiles_sourcerecord_source_id_0186e12b" ON "profiles_sourcerecord" ("source_id")',
                ),
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="event",
                    name="profile",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="events",
                        to="profiles.profile",
                    ),
                ),
                migrations.AlterField(
                    model_name="event",
                    name="source",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="events",
                        to="profiles.datasource",
                    ),
                ),
                migrations.AlterField(
                    model_name="identity",
                    name="profile",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="identities",
                        to="profiles.profile",
                    ),
                ),
                migrations.AlterField(
                    model_name="identity",
                    name="source_record",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="identities",
                        to="profiles.sourcerecord",
                    ),
                ),
                migrations.AlterField(
                    model_name="rawrecord",
                    name="import_run",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="raw_records",
                        to="profiles.importrun",
                    ),
                ),
                migrations.AlterField(
                    model_name="rawrecord",
                    name="source",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="raw_records",
                        to="profiles.datasource",
                    ),
                ),
                migrations.AlterField(
                    model_name="sourcerecord",
                    name="profile",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="source_records",
                        to="profiles.profile",
                    ),
                ),
                migrations.AlterField(
                    model_name="sourcerecord",
                    name="source",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="records",
                        to="profiles.datasource",
                    ),
                ),
            ],
        ),
    ]
