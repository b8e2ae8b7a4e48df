"""The naive design, for ``bench/throughput.py`` to compare Meridian against.

What most people build first: one Celery task per message, queued with ``.delay()``
in a loop; the task loads its patient through the ORM, renders the same Jinja2
templates, hands the message to the same accept transport and writes one ORM row
per send in its own transaction. Celery's defaults otherwise (early ack, prefetch
4). It reads Meridian's ``patients`` table and writes its own ``bench_naive_sends``
table in the same database, through Meridian's engine set-up (``make_engine``: the
same SQLite pragmas, the same PostgreSQL pool), so the comparison is of the design,
not of database tuning.

Not run on its own: ``bench/throughput.py`` starts
``python -m celery -A bench.naive worker -Q naive -c N`` with ``BENCH_NAIVE_BROKER``,
``BENCH_NAIVE_DATABASE_URL``, ``BENCH_NAIVE_TEMPLATES_DIR`` and ``BENCH_NAIVE_SECRET``
in the environment, and queues the messages with :func:`produce`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any

from celery import Celery
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import Float, Integer, MetaData, String, Table, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from campaigns.domain.transport import OutboundMessage
from campaigns.people.tokens import UnsubscribeClaim, make_unsubscribe_token
from campaigns.store.db import make_engine
from campaigns.store.tables import patients
from campaigns.transports.accept import AcceptTransport

QUEUE = "naive"
TEMPLATES = "cold-and-flu-season"

app = Celery("bench_naive")
app.conf.update(
    broker_url=os.environ.get("BENCH_NAIVE_BROKER", "redis://127.0.0.1:6379/1"),
    task_default_queue=QUEUE,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


class Base(DeclarativeBase):
    metadata = MetaData()


class Patient(Base):
    """Meridian's patients table, read the way an ORM-first design reads it."""

    __table__ = patients


class NaiveSend(Base):
    __tablename__ = "bench_naive_sends"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(5))
    provider_id: Mapped[str] = mapped_column(String(64))
    sent_at: Mapped[float] = mapped_column(Float)  # time.time()


SENDS: Table = NaiveSend.__table__  # type: ignore[assignment]


@dataclass
class _Worker:
    engine: Engine
    sessions: sessionmaker[Session]
    templates: Environment
    transports: dict[str, AcceptTransport]
    secret: str
    clinic: dict[str, str]


@cache
def _worker() -> _Worker:
    """Built on first use in each pool process (after the fork)."""
    engine = make_engine(os.environ["BENCH_NAIVE_DATABASE_URL"])
    templates = Environment(
        loader=FileSystemLoader(os.environ["BENCH_NAIVE_TEMPLATES_DIR"]),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html", "html.j2")),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return _Worker(
        engine=engine,
        sessions=sessionmaker(engine, expire_on_commit=False),
        templates=templates,
        transports={"sms": AcceptTransport("sms"), "email": AcceptTransport("email")},
        secret=os.environ.get("BENCH_NAIVE_SECRET", "bench"),
        clinic={
            "name": os.environ.get("MERIDIAN_CLINIC_NAME", "Clinic"),
            "address": os.environ.get("MERIDIAN_CLINIC_ADDRESS", ""),
            "phone": os.environ.get("MERIDIAN_CLINIC_PHONE", ""),
        },
    )


def _render(w: _Worker, part: str, context: dict[str, Any]) -> str:
    return w.templates.get_template(f"{TEMPLATES}/{part}").render(context).strip()


@app.task(name="bench.naive.send_one")  # type: ignore[untyped-decorator]
def send_one(patient_id: int, channel: str) -> None:
    w = _worker()
    with w.sessions() as session:
        patient: Any = session.get(Patient, patient_id)
    if patient is None:
        return
    url = None
    if channel == "email":
        claim = UnsubscribeClaim(patient_id, None, "email")
        url = "http://127.0.0.1:8000/unsubscribe/" + make_unsubscribe_token(w.secret, claim)
    context: dict[str, Any] = {
        "patient": {"first_name": patient.first_name, "last_name": patient.last_name},
        "clinic": w.clinic,
        "campaign": {"name": "naive"},
    }
    if url is not None:
        context["unsubscribe_url"] = url
    if channel == "sms":
        body, subject, html, to = _render(w, "sms.txt.j2", context), None, None, patient.phone
    else:
        body = _render(w, "email.txt.j2", context)
        subject = _render(w, "email.subject.j2", context)
        html = _render(w, "email.html.j2", context)
        to = patient.email
    message = OutboundMessage(
        delivery_id=0,
        run_id=0,
        channel="sms" if channel == "sms" else "email",
        to=to or "",
        body=body,
        subject=subject,
        html=html,
        unsubscribe_url=url,
    )
    receipt = w.transports[channel].send(message)
    with w.sessions() as session, session.begin():
        session.add(
            NaiveSend(
                patient_id=patient_id,
                channel=channel,
                provider_id=receipt.provider_id,
                sent_at=time.time(),
            )
        )


def create_table(engine: Engine) -> None:
    Base.metadata.create_all(engine, tables=[SENDS])
    with engine.begin() as conn:
        conn.execute(SENDS.delete())


def produce(broker_url: str, pairs: Iterable[tuple[int, str]]) -> int:
    """Queue one task per message, the way the naive design does: ``.delay()`` in a loop."""
    app.conf.broker_url = broker_url
    n = 0
    for patient_id, channel in pairs:
        send_one.delay(patient_id, channel)
        n += 1
    return n


def sent(engine: Engine) -> tuple[int, float | None, float | None]:
    """(rows written, first sent_at, last sent_at)."""
    with engine.connect() as conn:
        n, first, last = conn.execute(
            select(func.count(), func.min(SENDS.c.sent_at), func.max(SENDS.c.sent_at))
        ).one()
    return int(n), first, last
