"""replies heard: suppression list, consent tied to the number, the inbox, evidence kept

- ``suppressions``: numbers and addresses nothing may be sent to (append-only).
- ``consents.address``: the number or address a consent was given for (existing rows
  get the patient's current one); ``patients.sms_consent_for`` / ``email_consent_for``
  cache it beside the opt-in word.
- ``consents.patient_id`` loses its ON DELETE CASCADE and becomes nullable: deleting a
  patient keeps its evidence, with the patient's id and number/address removed (a
  BEFORE DELETE trigger on ``patients`` redacts them, and unlinks its inbound texts).
- Triggers make ``consents`` and ``suppressions`` append-only: an UPDATE or DELETE is
  refused (PostgreSQL raises, SQLite aborts), except that redaction.
- ``inbound_messages``: the To number, what Meridian did, its reply, when reviewed.
- ``staff_replies``: informational texts staff send from the inbox.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import campaigns.store.schema

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TS = campaigns.store.schema.UtcDateTime

# Columns an UPDATE may only leave as they are; the redactable ones may also go NULL.
_CONSENT_FIXED = (
    "id",
    "channel",
    "granted",
    "at",
    "source",
    "text_shown",
    "recorded_by",
    "recorded_at",
)
_CONSENT_REDACTABLE = ("patient_id", "address")
_SUPPRESSION_FIXED = (
    "id",
    "channel",
    "address",
    "suppressed",
    "reason",
    "at",
    "actor",
    "evidence",
    "inbound_id",
    "recorded_at",
)
_SUPPRESSION_REDACTABLE = ("patient_id",)
_EVIDENCE = {
    "consents": (_CONSENT_FIXED, _CONSENT_REDACTABLE),
    "suppressions": (_SUPPRESSION_FIXED, _SUPPRESSION_REDACTABLE),
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "suppressions",
        sa.Column("id", _ID, nullable=False),
        sa.Column("channel", sa.String(length=5), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("suppressed", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(length=24), nullable=False),
        sa.Column("at", _TS(), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=True),
        sa.Column("inbound_id", _ID, nullable=True),
        sa.Column("patient_id", _ID, nullable=True),
        sa.Column("recorded_at", _TS(), nullable=False),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_suppressions_inbound_id_inbound_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_suppressions_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppressions")),
    )
    op.create_index(
        "ix_suppressions_address", "suppressions", ["channel", "address", "id"], unique=False
    )
    op.create_table(
        "staff_replies",
        sa.Column("id", _ID, nullable=False),
        sa.Column("inbound_id", _ID, nullable=True),
        sa.Column("to_phone", sa.String(length=64), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("sent_by", sa.String(length=64), nullable=False),
        sa.Column("sent_at", _TS(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("provider_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["inbound_id"],
            ["inbound_messages.id"],
            name=op.f("fk_staff_replies_inbound_id_inbound_messages"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_replies")),
    )
    op.create_index("ix_staff_replies_to", "staff_replies", ["to_phone", "sent_at"], unique=False)

    with op.batch_alter_table("inbound_messages") as batch:
        batch.add_column(sa.Column("to_phone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("actions", sa.String(length=120), nullable=True))
        batch.add_column(sa.Column("auto_reply", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reviewed_at", _TS(), nullable=True))
    op.create_index(
        "ix_inbound_messages_from", "inbound_messages", ["from_phone", "received_at"], unique=False
    )

    with op.batch_alter_table("patients") as batch:
        batch.add_column(sa.Column("sms_consent_for", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("email_consent_for", sa.String(length=320), nullable=True))
    op.execute(
        "UPDATE patients SET sms_consent_for = COALESCE(phone, '') WHERE sms_opt_in IS NOT NULL"
    )
    op.execute(
        "UPDATE patients SET email_consent_for = COALESCE(email, '') WHERE email_opt_in IS NOT NULL"
    )

    if dialect == "sqlite":
        _consents_sqlite()
    else:
        op.add_column("consents", sa.Column("address", sa.String(length=320), nullable=True))
        op.alter_column("consents", "patient_id", existing_type=_ID, nullable=True)
        op.drop_constraint("fk_consents_patient_id_patients", "consents", type_="foreignkey")
        op.create_foreign_key(
            "fk_consents_patient_id_patients", "consents", "patients", ["patient_id"], ["id"]
        )
    op.execute(
        "UPDATE consents SET address = (SELECT CASE WHEN consents.channel = 'sms' "
        "THEN patients.phone ELSE patients.email END FROM patients "
        "WHERE patients.id = consents.patient_id)"
    )
    if dialect == "postgresql":
        _triggers_postgresql()
    else:
        _triggers_sqlite()


def _consents_sqlite() -> None:
    # SQLite cannot change a column's nullability or a foreign key in place: copy.
    op.create_table(
        "consents_new",
        sa.Column("id", _ID, nullable=False),
        sa.Column("patient_id", _ID, nullable=True),
        sa.Column("channel", sa.String(length=5), nullable=False),
        sa.Column("granted", sa.Boolean(), nullable=False),
        sa.Column("address", sa.String(length=320), nullable=True),
        sa.Column("at", _TS(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("text_shown", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=False),
        sa.Column("recorded_at", _TS(), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_consents_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consents")),
    )
    op.execute(
        "INSERT INTO consents_new (id, patient_id, channel, granted, at, source, text_shown,"
        " recorded_by, recorded_at) SELECT id, patient_id, channel, granted, at, source,"
        " text_shown, recorded_by, recorded_at FROM consents"
    )
    op.drop_index("ix_consents_patient_channel", table_name="consents")
    op.drop_table("consents")
    op.rename_table("consents_new", "consents")
    op.create_index(
        "ix_consents_patient_channel", "consents", ["patient_id", "channel", "at"], unique=False
    )


def _unchanged(columns: tuple[str, ...], same: str) -> str:
    return " AND ".join(f"NEW.{c} {same} OLD.{c}" for c in columns)


def _redacted(columns: tuple[str, ...], same: str) -> str:
    return " AND ".join(f"(NEW.{c} {same} OLD.{c} OR NEW.{c} IS NULL)" for c in columns)


def _triggers_postgresql() -> None:
    op.execute(
        """
        CREATE FUNCTION meridian_refuse_evidence_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only evidence: % refused', TG_TABLE_NAME, TG_OP
            USING ERRCODE = 'restrict_violation';
        END $$
        """
    )
    for table, (fixed, redactable) in _EVIDENCE.items():
        same = "IS NOT DISTINCT FROM"
        op.execute(
            f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION meridian_refuse_evidence_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table} FOR EACH ROW "
            f"WHEN (NOT ({_unchanged(fixed, same)} AND {_redacted(redactable, same)})) "
            "EXECUTE FUNCTION meridian_refuse_evidence_change()"
        )
    op.execute(
        """
        CREATE FUNCTION meridian_redact_patient() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE consents SET patient_id = NULL, address = NULL WHERE patient_id = OLD.id;
          UPDATE suppressions SET patient_id = NULL WHERE patient_id = OLD.id;
          UPDATE inbound_messages SET patient_id = NULL WHERE patient_id = OLD.id;
          RETURN OLD;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER patients_redact_evidence BEFORE DELETE ON patients "
        "FOR EACH ROW EXECUTE FUNCTION meridian_redact_patient()"
    )


def _triggers_sqlite() -> None:
    for table, (fixed, redactable) in _EVIDENCE.items():
        refuse = f"SELECT RAISE(ABORT, '{table} is append-only evidence: %s refused');"
        op.execute(
            f"CREATE TRIGGER {table}_append_only_delete BEFORE DELETE ON {table} "
            f"BEGIN {refuse % 'DELETE'} END"
        )
        op.execute(
            f"CREATE TRIGGER {table}_append_only_update BEFORE UPDATE ON {table} "
            f"WHEN NOT ({_unchanged(fixed, 'IS')} AND {_redacted(redactable, 'IS')}) "
            f"BEGIN {refuse % 'UPDATE'} END"
        )
    op.execute(
        "CREATE TRIGGER patients_redact_evidence BEFORE DELETE ON patients BEGIN "
        "UPDATE consents SET patient_id = NULL, address = NULL WHERE patient_id = OLD.id; "
        "UPDATE suppressions SET patient_id = NULL WHERE patient_id = OLD.id; "
        "UPDATE inbound_messages SET patient_id = NULL WHERE patient_id = OLD.id; "
        "END"
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.execute("DROP TRIGGER IF EXISTS patients_redact_evidence" + _on("patients", dialect))
    for table in _EVIDENCE:
        for what in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{what}" + _on(table, dialect))
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS meridian_redact_patient()")
        op.execute("DROP FUNCTION IF EXISTS meridian_refuse_evidence_change()")
        # Evidence of deleted patients cannot go back under NOT NULL: it stays out.
        op.execute("DELETE FROM consents WHERE patient_id IS NULL")
        op.drop_constraint("fk_consents_patient_id_patients", "consents", type_="foreignkey")
        op.create_foreign_key(
            "fk_consents_patient_id_patients",
            "consents",
            "patients",
            ["patient_id"],
            ["id"],
            ondelete="CASCADE",
        )
        op.alter_column("consents", "patient_id", existing_type=_ID, nullable=False)
    else:
        op.execute("DELETE FROM consents WHERE patient_id IS NULL")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch copy of ``patients``
    # would have to drop a table other tables refer to.
    for table, column in (
        ("consents", "address"),
        ("patients", "email_consent_for"),
        ("patients", "sms_consent_for"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.drop_index("ix_inbound_messages_from", table_name="inbound_messages")
    for column in ("reviewed_at", "auto_reply", "actions", "to_phone"):
        op.execute(f"ALTER TABLE inbound_messages DROP COLUMN {column}")
    op.drop_index("ix_staff_replies_to", table_name="staff_replies")
    op.drop_table("staff_replies")
    op.drop_index("ix_suppressions_address", table_name="suppressions")
    op.drop_table("suppressions")


def _on(table: str, dialect: str) -> str:
    return f" ON {table}" if dialect == "postgresql" else ""
