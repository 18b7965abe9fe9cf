"""The data version's trigger never waits for another transaction's counter.

0010 bumped the slot of the writer's backend (pid mod 64) and waited when another transaction
held it. A transaction that locked a pair and then wrote could so wait on one that held the
slot and wanted the pair: a deadlock, rare (two writers on one pair, one slot in 64) but real.
Now the trigger takes any slot no other transaction holds (its own first), with SKIP LOCKED;
it waits only when every one of the 64 is held elsewhere, which takes 64 concurrent writers.
"""

from django.db import migrations

SLOTS = 64
# A new slot's first value: random, so an emptied table never counts through old sums.
START = "1 + floor(random() * 4503599627370496)::bigint"

BUMP = f"""
CREATE OR REPLACE FUNCTION annotation_bump_data_version() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    free smallint;
BEGIN
    SELECT slot INTO free FROM annotation_dataversion
    ORDER BY slot = mod(pg_backend_pid(), {SLOTS}) DESC, slot
    LIMIT 1 FOR NO KEY UPDATE SKIP LOCKED;
    IF free IS NOT NULL THEN
        UPDATE annotation_dataversion SET version = version + 1 WHERE slot = free;
        RETURN NULL;
    END IF;
    -- No slot free here: the table was emptied (a test flush), or all are held elsewhere.
    INSERT INTO annotation_dataversion AS v (slot, version)
    SELECT s, {START}
    FROM generate_series(0, {SLOTS} - 1) s
    WHERE NOT EXISTS (SELECT FROM annotation_dataversion d WHERE d.slot = s)
    ORDER BY s = mod(pg_backend_pid(), {SLOTS}) DESC, s
    LIMIT 1
    ON CONFLICT (slot) DO NOTHING;
    IF NOT FOUND THEN  -- every slot exists and is held elsewhere: wait for this backend's own
        INSERT INTO annotation_dataversion AS v (slot, version)
        VALUES (mod(pg_backend_pid(), {SLOTS}), {START})
        ON CONFLICT (slot) DO UPDATE SET version = v.version + 1;
    END IF;
    RETURN NULL;
END
$$
"""

# Every slot exists from the start, each at a random value.
FILL = f"""
INSERT INTO annotation_dataversion (slot, version)
SELECT s, {START} FROM generate_series(0, {SLOTS} - 1) s
ON CONFLICT (slot) DO NOTHING
"""

# 0010's function, for going back.
OLD_BUMP = """
CREATE OR REPLACE FUNCTION annotation_bump_data_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO annotation_dataversion AS v (slot, version)
    VALUES (mod(pg_backend_pid(), 64), 1 + floor(random() * 4503599627370496)::bigint)
    ON CONFLICT (slot) DO UPDATE SET version = v.version + 1;
    RETURN NULL;
END
$$
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(BUMP)
    schema_editor.execute(FILL)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(OLD_BUMP)


class Migration(migrations.Migration):
    dependencies = [("annotation", "0010_data_version")]

    operations = [migrations.RunPython(forwards, backwards)]
