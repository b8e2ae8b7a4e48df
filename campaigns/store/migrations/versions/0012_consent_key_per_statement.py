"""consent evidence's patient checked once per statement, by the database

On PostgreSQL the foreign key from ``consents`` to ``patients`` cost a trigger call
and a key-share lock per evidence row of every COPY: about half of the server's work
in an import. The same rule is now checked once per statement, still by the
database and for every writer: an AFTER INSERT statement trigger reads the
statement's new rows (a transition table), key-share locks their patients in one
query by the primary key's index, as the constraint's trigger locked them row by
row, and raises foreign_key_violation if one is missing. A patient deleted meanwhile
is not found, so the statement fails; a patient locked first cannot be deleted until
the evidence is committed, and its deletion then redacts it (0003's BEFORE DELETE
trigger). The constraint's other side, a patient's id changing under its evidence,
is refused by a BEFORE UPDATE OF id trigger. Both of the patient's sides read what
is committed, so they are allowed only in READ COMMITTED transactions (Meridian
itself never deletes or renumbers a patient); the constraint's check saw past an
older snapshot, a trigger cannot. An UPDATE of ``consents`` may only set
``patient_id`` to NULL (0003's append-only trigger), so it needs no check. TRUNCATE
fires none of this, as it fires none of 0003's triggers: ``TRUNCATE patients
CASCADE`` no longer empties ``consents``. Without the key, pg_dump no longer knows
that patients' rows must be loaded before their evidence: a data-only restore loads
``patients`` first.

SQLite keeps its constraint: there it costs little (as 0008 found for deliveries).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import logging

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_CONSTRAINT = "fk_consents_patient_id_patients"
log = logging.getLogger(__name__)

# Both functions carry the schema they were created in (then pg_temp, so no temporary
# table can stand in for ``patients``): a data-only restore (pg_dump --data-only) runs
# with an empty search_path, and "$user" may name another schema for another role.
_PATIENTS_EXIST = """
CREATE FUNCTION consents_patients_exist() RETURNS trigger LANGUAGE plpgsql
-- An import plans each statement afresh (plan_cache_mode force_custom_plan), and
-- given its 5,000 ids the planner read the whole table (22 ms at 100,000 patients,
-- longer the more there are); the primary key's index finds them in 4 ms.
SET enable_seqscan = off
SET search_path = @PATH@ AS $$
DECLARE
    wanted bigint[];
    found bigint;
    missing text;
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
        SELECT string_agg(w::text, ', ' ORDER BY w) INTO missing FROM unnest(wanted) AS w
            WHERE NOT EXISTS (SELECT 1 FROM patients WHERE id = w);
        RAISE EXCEPTION 'consent evidence names % patient(s) that do not exist',
            cardinality(wanted) - found
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'patients.id not present: ' || coalesce(missing, '(deleted meanwhile)');
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER consents_patients_exist AFTER INSERT ON consents
    REFERENCING NEW TABLE AS new_consents
    FOR EACH STATEMENT EXECUTE FUNCTION consents_patients_exist();
"""

# The patient's side. Deleting a patient redacts its evidence (0003) and moving its
# id looks for evidence: both read what is committed when they run, which only READ
# COMMITTED guarantees. Under an older snapshot (REPEATABLE READ, SERIALIZABLE),
# evidence committed since would be missed and left naming no patient, where the
# foreign key's check would have seen it; so those are refused there.
_KEEP_PATIENT = """
CREATE FUNCTION consents_keep_patient() RETURNS trigger LANGUAGE plpgsql
SET search_path = @PATH@ AS $$
BEGIN
    -- READ UNCOMMITTED is READ COMMITTED in PostgreSQL.
    IF current_setting('transaction_isolation') NOT IN ('read committed', 'read uncommitted')
    THEN
        RAISE EXCEPTION 'a patient may be deleted or given another id only in a READ '
            'COMMITTED transaction: consent evidence committed meanwhile would be missed'
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    IF EXISTS (SELECT 1 FROM consents WHERE patient_id = OLD.id) THEN
        RAISE EXCEPTION 'consent evidence refers to this patient''s id'
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'consents.patient_id = ' || OLD.id;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER consents_keep_patient BEFORE DELETE ON patients
    FOR EACH ROW EXECUTE FUNCTION consents_keep_patient();
CREATE TRIGGER consents_keep_patient_id BEFORE UPDATE OF id ON patients
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION consents_keep_patient();
"""

# Evidence naming no patient (left by a TRUNCATE, which no trigger sees) would stop
# the constraint being added back: it is redacted first, as 0003 allows.
_REDACT_ORPHANS = """
UPDATE consents SET patient_id = NULL, address = NULL
WHERE patient_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM patients WHERE patients.id = consents.patient_id)
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    schema = bind.exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    path = f"{schema}, pg_temp"
    op.drop_constraint(_CONSTRAINT, "consents", type_="foreignkey")
    op.execute(_PATIENTS_EXIST.replace("@PATH@", path))
    op.execute(_KEEP_PATIENT.replace("@PATH@", path))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER consents_keep_patient_id ON patients")
    op.execute("DROP TRIGGER consents_keep_patient ON patients")
    op.execute("DROP FUNCTION consents_keep_patient()")
    op.execute("DROP TRIGGER consents_patients_exist ON consents")
    op.execute("DROP FUNCTION consents_patients_exist()")
    redacted = op.get_bind().exec_driver_sql(_REDACT_ORPHANS).rowcount
    if redacted:
        log.warning("consents: %d rows named no patient and were redacted", redacted)
    op.create_foreign_key(_CONSTRAINT, "consents", "patients", ["patient_id"], ["id"])
