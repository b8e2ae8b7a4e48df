"""consent evidence's patient checked once per statement, by the database

On PostgreSQL the foreign key from ``consents`` to ``patients`` cost a trigger call
and a key-share lock per evidence row of every COPY: about a third of the server's
work in an import. The same rule is now checked once per statement, still by the
database and for every writer: an AFTER INSERT statement trigger reads the
statement's new rows (a transition table), key-share locks their patients in one
query by the primary key's index, as the constraint's trigger locked them row by
row, and raises foreign_key_violation if one is missing. A patient deleted meanwhile is not locked,
so the statement fails; a patient locked first cannot be deleted until the evidence
is committed, and its deletion then redacts it (0003's BEFORE DELETE trigger). The
other side of the constraint, a patient's id changing under its evidence, is refused
by a BEFORE UPDATE OF id trigger. An UPDATE of ``consents`` may only set
``patient_id`` to NULL (0003's append-only trigger), so it needs no check.

SQLite keeps its constraint: there it costs little (as 0008 found for deliveries).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_CONSTRAINT = "fk_consents_patient_id_patients"

_PATIENTS_EXIST = """
CREATE FUNCTION consents_patients_exist() RETURNS trigger LANGUAGE plpgsql
-- Given an import's 5,000 ids the planner reads the whole table, longer the more
-- patients there are (22 ms at 100,000); the primary key's index finds them in 7.
SET enable_seqscan = off AS $$
DECLARE
    wanted bigint[];
    found bigint;
BEGIN
    SELECT array_agg(DISTINCT patient_id) INTO wanted
        FROM new_consents WHERE patient_id IS NOT NULL;
    IF wanted IS NULL THEN
        RETURN NULL;
    END IF;
    SELECT count(*) INTO found FROM (
        SELECT 1 FROM patients WHERE id = ANY (wanted) FOR KEY SHARE
    ) AS locked;
    IF found <> cardinality(wanted) THEN
        RAISE EXCEPTION 'consent evidence names % patient(s) that do not exist',
            cardinality(wanted) - found
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER consents_patients_exist AFTER INSERT ON consents
    REFERENCING NEW TABLE AS new_consents
    FOR EACH STATEMENT EXECUTE FUNCTION consents_patients_exist();
"""

_KEEP_ID = """
CREATE FUNCTION consents_keep_patient_id() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM consents WHERE patient_id = OLD.id) THEN
        RAISE EXCEPTION 'consent evidence refers to this patient''s id'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER consents_keep_patient_id BEFORE UPDATE OF id ON patients
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION consents_keep_patient_id();
"""


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_constraint(_CONSTRAINT, "consents", type_="foreignkey")
    op.execute(_PATIENTS_EXIST)
    op.execute(_KEEP_ID)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER consents_keep_patient_id ON patients")
    op.execute("DROP FUNCTION consents_keep_patient_id()")
    op.execute("DROP TRIGGER consents_patients_exist ON consents")
    op.execute("DROP FUNCTION consents_patients_exist()")
    op.create_foreign_key(_CONSTRAINT, "consents", "patients", ["patient_id"], ["id"])
