"""The results' tables: first-party clicks and bookings (migration 0010) and the
delivery reports of bounces, complaints and carrier codes (migration 0009)."""

from __future__ import annotations

from sqlalchemy import Column, Date, ForeignKey, Index, String, Table, Text, UniqueConstraint

from campaigns.store.schema import Id, metadata, ts

# Results, first-party (migration 0010). ``links``: each distinct URL a message
# carried, once, so that a short link's token names only a number; ``clicks``: one
# row per delivery and link, however often the patient clicks; ``bookings``: a
# patient's next appointment changing to a future date, attributed to the run of the
# latest delivery sent within MERIDIAN_BOOKING_WINDOW_DAYS before it (else none).
links = Table(
    "links",
    metadata,
    Column("id", Id, primary_key=True),
    Column("url_hash", String(64), nullable=False, unique=True),  # sha256 hex of the URL
    Column("url", Text, nullable=False),
    ts("created_at", nullable=False),
)

clicks = Table(
    "clicks",
    metadata,
    Column("id", Id, primary_key=True),
    Column("delivery_id", ForeignKey("deliveries.id"), nullable=False),
    Column("link_id", ForeignKey("links.id"), nullable=False),
    ts("at", nullable=False),
    UniqueConstraint("delivery_id", "link_id", name="uq_clicks_delivery_link"),
)

bookings = Table(
    "bookings",
    metadata,
    Column("id", Id, primary_key=True),
    Column("patient_id", ForeignKey("patients.id"), nullable=True),  # NULL once deleted
    Column("appointment", Date, nullable=False),
    ts("booked_at", nullable=False),
    Column("source", String(16), nullable=False),  # csv-import, api
    Column("delivery_id", ForeignKey("deliveries.id")),  # attributed to; NULL: none
    Column("run_id", ForeignKey("campaign_runs.id")),
)
Index("ix_bookings_run", bookings.c.run_id)
Index("ix_bookings_delivery", bookings.c.delivery_id)

# Delivery reports: bounces, complaints, refusals and SMS error codes, each with the
# decision taken. No address in clear: ``address_key`` is an HMAC of it, so soft
# bounces to one address can be counted. A report is kept once per (source, report_id).
delivery_reports = Table(
    "delivery_reports",
    metadata,
    Column("id", Id, primary_key=True),
    Column("delivery_id", ForeignKey("deliveries.id")),  # NULL: no delivery was found
    Column("channel", String(5), nullable=False),
    # hard, soft, complaint, refused (SMTP 5xx at send), sms-error, bad-signature
    Column("kind", String(16), nullable=False),
    Column("status", String(32)),  # 5.1.1, 550, 30005, abuse ...
    Column("source", String(24), nullable=False),  # smtp, imap, mailgun, twilio
    Column("report_id", String(255), nullable=False),  # the report's Message-ID or event id
    Column("address_key", String(64)),
    # suppressed, counted, already-suppressed, no-delivery, refused
    Column("decision", String(24), nullable=False),
    ts("at", nullable=False),
    UniqueConstraint("source", "report_id", name="uq_delivery_reports_source_report"),
)
Index("ix_delivery_reports_address", delivery_reports.c.address_key, delivery_reports.c.kind)
Index("ix_delivery_reports_delivery", delivery_reports.c.delivery_id)
