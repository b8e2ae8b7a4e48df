"""The ledger's tables (DESIGN section 3), in SQLAlchemy Core.

Consent evidence is append-only in ``consents``, and so is the suppression list
(``suppressions``): migration 0003 adds triggers that refuse an UPDATE or DELETE on
either, except the redaction a patient's deletion makes (its id and, on consents,
the number or address, set to NULL). ``patients.sms_opt_in`` and
``patients.email_opt_in`` cache the latest word per channel, and
``sms_consent_for`` / ``email_consent_for`` the number or address that word was
given for, so that fan-out and the send-time check read one row; they are only
ever written together with a new consent row.

The foreign keys declared here are the schema's on SQLite. On PostgreSQL two are
checked another way, with the same promises: a delivery's run and patient once per
fan-out chunk (migration 0008, ``store.delivery_rows``), and a consent's patient
once per statement by a trigger (migration 0012).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    literal_column,
    text,
)
from sqlalchemy.sql.elements import ColumnElement

from campaigns.domain.states import FREED_NAME_STATES, CampaignState
from campaigns.store.schema import Id, metadata, ts

# The results' tables (clicks, bookings, delivery reports) live in tables_results and
# are named here too, so that every table of the ledger is reached from this module.
from campaigns.store.tables_results import bookings as bookings
from campaigns.store.tables_results import clicks as clicks
from campaigns.store.tables_results import delivery_reports as delivery_reports
from campaigns.store.tables_results import links as links

patients = Table(
    "patients",
    metadata,
    Column("id", Id, primary_key=True),
    Column("external_id", String(64), nullable=False, unique=True),
    Column("first_name", String(100)),
    Column("last_name", String(100)),
    Column("email", String(320)),
    Column("phone", String(20)),  # E.164
    Column("timezone", String(64)),  # IANA
    Column("state", String(2)),  # USPS code
    Column("tags", String(500), nullable=False, default=";"),  # ";a;b;" for exact matching
    Column("last_visit", Date),
    Column("next_appointment", Date),
    Column("preferred_channel", String(5)),
    # None: no consent on file; False: the patient said no or revoked it.
    Column("sms_opt_in", Boolean),
    Column("email_opt_in", Boolean),
    # The number / address the cached word was given for ("" when none was on file):
    # consent given for another number is no consent for this one.
    Column("sms_consent_for", String(20)),
    Column("email_consent_for", String(320)),
    ts("created_at", nullable=False),
    ts("updated_at", nullable=False),
)
Index("ix_patients_phone", patients.c.phone)
Index("ix_patients_email", patients.c.email)

consents = Table(
    "consents",
    metadata,
    Column("id", Id, primary_key=True),
    # NULL once the patient is deleted: the evidence stays, without who it was.
    # On PostgreSQL checked once per statement by a trigger (migration 0012).
    Column("patient_id", ForeignKey("patients.id"), nullable=True),
    Column("channel", String(5), nullable=False),
    Column("granted", Boolean, nullable=False),
    # The number (E.164) or email address the consent was given or withdrawn for.
    Column("address", String(320)),
    ts("at", nullable=False),  # when the patient gave or withdrew it
    Column("source", String(32), nullable=False),  # import, web-form, keyword, staff, provider
    Column("text_shown", Text),  # the words the patient agreed to, or the words of the opt-out
    Column("recorded_by", String(64), nullable=False),
    ts("recorded_at", nullable=False),
)
Index("ix_consents_patient_channel", consents.c.patient_id, consents.c.channel, consents.c.at)

campaigns = Table(
    "campaigns",
    metadata,
    Column("id", Id, primary_key=True),
    # unique among the campaigns that hold their name (uq_campaigns_live_name below)
    Column("name", String(64), nullable=False),
    Column("definition", JSON, nullable=False),
    # a CampaignState; its moves are campaigns.domain.states.CAMPAIGN_TRANSITIONS
    Column("status", String(16), nullable=False, default=CampaignState.DRAFT.value),
    Column("findings", JSON, nullable=False, default=list),
    ts("created_at", nullable=False),
    ts("updated_at", nullable=False),
    # An A/B test of its copy (campaigns.content.variants): variant letter -> percent,
    # e.g. {"A": 50, "B": 50}; NULL: no test, everyone gets the copy (variant A).
    Column("variant_split", JSON),
)

# A cancelled or archived campaign frees its name (migration 0006): a new campaign may
# take it, while the old row keeps its id, and its runs keep pointing at it.
_HOLDS_NAME = text(
    "status NOT IN (" + ", ".join(f"'{state.value}'" for state in sorted(FREED_NAME_STATES)) + ")"
)
Index(
    "uq_campaigns_live_name",
    campaigns.c.name,
    unique=True,
    sqlite_where=_HOLDS_NAME,
    postgresql_where=_HOLDS_NAME,
)

# A campaign's copy as staff wrote it in the console or in the YAML's ``copy:`` block:
# immutable versions, numbered per campaign; a save or a restore adds one.
# ``email_body`` is Markdown or HTML (``email_format``); ``email_text`` NULL means the
# text part is generated from the HTML. campaigns.content.copy turns a row into templates.
template_versions = Table(
    "template_versions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("campaign_id", ForeignKey("campaigns.id"), nullable=False),
    Column("number", Integer, nullable=False),
    Column("author", String(64), nullable=False),
    ts("created_at", nullable=False),
    Column("sms", Text),
    Column("email_subject", Text),
    Column("email_body", Text),
    Column("email_format", String(8), nullable=False),  # markdown, html
    Column("email_text", Text),
    Column("restored_from", Integer),  # the number this version copies, for a restore
    # The A/B variant this version is the copy of ("B", "C", ...); NULL: the main copy (A).
    Column("variant", String(8)),
    UniqueConstraint("campaign_id", "number", name="uq_template_versions_number"),
)

campaign_runs = Table(
    "campaign_runs",
    metadata,
    Column("id", Id, primary_key=True),
    Column("campaign_id", ForeignKey("campaigns.id"), nullable=False),
    Column("occurrence", String(40), nullable=False),  # "2027-10-15", or "now:<iso>" for run-now
    Column("trigger", String(16), nullable=False),  # schedule, manual
    # fanning_out -> running <-> paused -> finished | cancelled; or missed
    Column("status", String(16), nullable=False),
    Column("planned", Integer, nullable=False, default=0),
    ts("started_at", nullable=False),
    ts("finished_at"),
    # The copy the run sends, fixed when it starts (NULL: the campaign's templates folder).
    Column("template_version_id", ForeignKey("template_versions.id")),
    # An A/B run: {"split": {"A": 50, "B": 50}, "versions": {"B": <version id>}}, fixed
    # when it starts like template_version_id (which is variant A's); NULL: no test.
    Column("variants", JSON),
    UniqueConstraint("campaign_id", "occurrence", name="uq_campaign_runs_occurrence"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Id, primary_key=True),
    Column("run_id", ForeignKey("campaign_runs.id"), nullable=False),
    Column("patient_id", ForeignKey("patients.id"), nullable=False),
    Column("channel", String(5), nullable=False),
    # pending -> sending -> sent -> delivered | undelivered; failed; unknown; skipped
    Column("state", String(12), nullable=False),
    Column("skip_reason", String(24)),
    ts("due_at", nullable=False),
    ts("next_attempt_at", nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    ts("claimed_at"),
    ts("sent_at"),
    Column("provider_id", String(64)),
    Column("error_code", String(16)),
    Column("error_reason", String(200)),
    ts("updated_at", nullable=False),
    # The A/B variant this patient was given (campaigns.content.variants.assign); NULL
    # for a run with no test.
    Column("variant", String(8)),
    UniqueConstraint("run_id", "patient_id", "channel", name="uq_deliveries_recipient"),
)
# Only what the claim, the sweeper and the console read by (migration 0008). The open
# states are a small moving part of a big table: partial indexes hold just them, so a
# fan-out's skipped rows touch none of them and a claim's plan never weighs the rest.
# The claim itself goes by the primary key; the unique key finds a run's rows; the
# patient's (patient_id, sent_at) serves the caps, the patient page and the foreign key.
_OPEN_SQL = "state IN ('pending', 'sending', 'unknown')"
_PENDING_SQL = "state = 'pending'"
Index(
    "ix_deliveries_open",
    deliveries.c.state,
    deliveries.c.run_id,
    postgresql_where=text(_OPEN_SQL),
    sqlite_where=text(_OPEN_SQL),
)
Index(
    "ix_deliveries_pending_due",
    deliveries.c.next_attempt_at,
    deliveries.c.id,
    postgresql_where=text(_PENDING_SQL),
    sqlite_where=text(_PENDING_SQL),
)
Index("ix_deliveries_patient_sent", deliveries.c.patient_id, deliveries.c.sent_at)


def delivery_state_in(*states: str) -> ColumnElement[bool]:
    """``deliveries.state`` is one of ``states``, the states written into the SQL, not
    bound: SQLite uses a partial index only when the query's own text implies the
    index's WHERE, and a bound parameter never does (with ``state IN (?, ?, ?)`` it
    read every row of the run to find one open)."""
    if not states or not all(s.isidentifier() for s in states):
        raise ValueError(f"not delivery states: {states!r}")
    if len(states) == 1:
        return deliveries.c.state == literal_column(f"'{states[0]}'")
    return deliveries.c.state.in_([literal_column(f"'{s}'") for s in sorted(states)])


Index(
    "ix_deliveries_provider",
    deliveries.c.provider_id,
    postgresql_where=text("provider_id IS NOT NULL"),
    sqlite_where=text("provider_id IS NOT NULL"),
)

inbound_messages = Table(
    "inbound_messages",
    metadata,
    Column("id", Id, primary_key=True),
    Column("provider_sid", String(64), unique=True),
    # E.164 for SMS; a channel-prefixed address ("whatsapp:+1...") when Twilio
    # forwards another channel to the same webhook.
    Column("from_phone", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("patient_id", ForeignKey("patients.id")),
    # campaigns.people.replies.REPLY_KINDS: stop, revocation, start, help, wrong_number,
    # unclear, booking, other
    Column("kind", String(16), nullable=False),
    Column("flagged", Boolean, nullable=False, default=False),  # needs a person
    Column("reviewed_by", String(64)),  # "mark done"
    ts("received_at", nullable=False),
    Column("to_phone", String(64)),  # the clinic's number it was sent to, as given
    Column("actions", String(120)),  # what Meridian did: "revoked suppressed", ...
    Column("auto_reply", Text),  # the reply Meridian gave, if any
    ts("reviewed_at"),
)
Index("ix_inbound_messages_from", inbound_messages.c.from_phone, inbound_messages.c.received_at)

# The suppression list: numbers and addresses nothing may be sent to, whoever the
# patient. Append-only: a row suppresses or lifts; the latest row per (channel,
# address) decides.
suppressions = Table(
    "suppressions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("channel", String(5), nullable=False),
    Column("address", String(320), nullable=False),  # E.164 or a normalised email address
    Column("suppressed", Boolean, nullable=False),  # False: this row lifts it
    # stop, revocation, wrong-number, provider-21610, unsubscribe, staff, start, consent
    Column("reason", String(24), nullable=False),
    ts("at", nullable=False),
    Column("actor", String(64), nullable=False),  # patient, provider, staff username
    Column("evidence", Text),  # the message or the staff member's reason
    Column("inbound_id", ForeignKey("inbound_messages.id")),
    Column("patient_id", ForeignKey("patients.id")),  # NULL once the patient is deleted
    ts("recorded_at", nullable=False),
)
Index("ix_suppressions_address", suppressions.c.channel, suppressions.c.address, suppressions.c.id)

# Informational replies staff send from the inbox.
staff_replies = Table(
    "staff_replies",
    metadata,
    Column("id", Id, primary_key=True),
    Column("inbound_id", ForeignKey("inbound_messages.id")),
    Column("to_phone", String(64), nullable=False),
    Column("body", Text, nullable=False),
    Column("sent_by", String(64), nullable=False),
    ts("sent_at", nullable=False),
    Column("state", String(12), nullable=False),  # sent, failed
    Column("provider_id", String(64)),
    Column("error", String(200)),
)
Index("ix_staff_replies_to", staff_replies.c.to_phone, staff_replies.c.sent_at)

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Id, primary_key=True),
    ts("at", nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(48), nullable=False),
    Column("subject_type", String(24), nullable=False),
    Column("subject_id", String(64)),
    Column("detail", JSON, nullable=False, default=dict),  # ids and counts only, never PHI
)
Index("ix_audit_events_at", audit_events.c.at)

staff_users = Table(
    "staff_users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(255), nullable=False),
    Column("role", String(16), nullable=False),  # admin, approver, marketer, viewer
    Column("active", Boolean, nullable=False, default=True),
    ts("created_at", nullable=False),
    # The staff member's own phone (E.164) and email: where "send a test" goes.
    Column("phone", String(20)),
    Column("email", String(320)),
)

# Console sign-ins, one row each, so signing out or disabling a user ends them at once:
# the cookie holds only a random token; its SHA-256 is the id here.
staff_sessions = Table(
    "staff_sessions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(64), nullable=False, index=True),
    ts("created_at", nullable=False),
    ts("seen_at", nullable=False),
)

# Review of a campaign, append-only: submitted, approved, sent back. The latest row
# decides; an approval counts only while its fingerprint (campaigns.content.approval)
# matches the campaign's content now.
campaign_reviews = Table(
    "campaign_reviews",
    metadata,
    Column("id", Id, primary_key=True),
    Column("campaign_id", ForeignKey("campaigns.id"), nullable=False),
    Column("action", String(16), nullable=False),  # submitted, approved, sent_back
    Column("fingerprint", String(64), nullable=False),  # sha256 of what was reviewed
    Column("actor", String(64), nullable=False),
    Column("comment", Text),  # the approver's words when sending back
    ts("at", nullable=False),
)
Index("ix_campaign_reviews_campaign", campaign_reviews.c.campaign_id, campaign_reviews.c.id)
