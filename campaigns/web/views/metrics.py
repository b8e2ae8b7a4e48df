"""``/metrics`` in Prometheus' text format (prometheus-client), behind a bearer token.

Computed when scraped, from the ledger and Redis, so every process's work counts
whichever gunicorn worker or machine answers the scrape: prometheus-client's
multiprocess mode shares files of one host only, and the web, the workers and beat
run on several (compose, systemd). Figures measured inside the workers (provider
latency, rate-limit waits) and the web processes (webhook verdicts) are added to
Redis hashes as they happen (campaigns.sending.tally) and read here.

Protected by MERIDIAN_METRICS_TOKEN (``Authorization: Bearer <token>``, Prometheus'
``authorization`` scrape option); without it set, /metrics is off (404). Labels are
channels, states, queues and routes: never a patient's data.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator

from flask import Response, request
from flask.typing import ResponseReturnValue
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from campaigns import keys
from campaigns.domain.states import DeliveryState
from campaigns.sending.tally import RedisTally
from campaigns.services import Services
from campaigns.web.context import services
from campaigns.web.views.health import bp

log = logging.getLogger(__name__)

# A delivery in one of these states has had its outcome; the others are work in progress.
OUTCOMES = frozenset(
    {
        DeliveryState.SENT,
        DeliveryState.DELIVERED,
        DeliveryState.UNDELIVERED,
        DeliveryState.FAILED,
        DeliveryState.SKIPPED,
        DeliveryState.UNKNOWN,
    }
)
_WEBHOOKS = {"public.twilio_inbound": "twilio_inbound", "public.twilio_status": "twilio_status"}


@bp.get("/metrics")
def metrics() -> ResponseReturnValue:
    svc = services()
    token = svc.settings.metrics_token
    if token is None:
        return Response("metrics are off: set MERIDIAN_METRICS_TOKEN\n", 404, mimetype="text/plain")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme != "Bearer" or not hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        return Response(
            "a bearer token is required\n",
            401,
            {"WWW-Authenticate": 'Bearer realm="metrics"'},
            mimetype="text/plain",
        )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MeridianCollector(svc))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


@bp.after_app_request
def _count_webhook_verdicts(response: Response) -> Response:
    route = _WEBHOOKS.get(request.endpoint or "")
    if route is not None:
        status = response.status_code
        verdict = (
            "accepted"
            if status < 300
            else "refused"
            if status in (401, 403)
            else "invalid"
            if status < 500
            else "error"
        )
        services().tally.count_webhook(route, verdict)
    return response


class MeridianCollector(Collector):
    def __init__(self, svc: Services) -> None:
        self.svc = svc

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "meridian_scrape_source_up",
            "1 if the source answered this scrape, else 0 (its metrics are missing)",
            labels=["source"],
        )
        for source, produce in (("database", self._ledger), ("redis", self._redis)):
            try:
                families = list(produce())
            except Exception as exc:  # a source away leaves its metrics out, not a 500
                log.warning("metrics: %s unreachable (%s)", source, type(exc).__name__)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up

    def _ledger(self) -> Iterator[Metric]:
        messages = CounterMetricFamily(
            "meridian_messages",
            "Deliveries that have an outcome, by channel and outcome",
            labels=["channel", "outcome"],
        )
        by_state = GaugeMetricFamily(
            "meridian_deliveries", "Deliveries in each state now", labels=["state"]
        )
        states: dict[str, int] = {s.value: 0 for s in DeliveryState}
        for channel, state, n in self.svc.health.deliveries_by_channel_and_state():
            states[state] = states.get(state, 0) + n
            if state in OUTCOMES:
                messages.add_metric([channel, state], n)
        for state, n in sorted(states.items()):
            by_state.add_metric([state], n)
        rows = CounterMetricFamily(
            "meridian_import_rows",
            "Patient rows written by imports (dry runs excluded), by outcome",
            labels=["outcome"],
        )
        for outcome, n in self.svc.health.imported_rows().items():
            rows.add_metric([outcome], n)
        yield from (messages, by_state, rows)

    def _redis(self) -> Iterator[Metric]:
        r, now = self.svc.redis, self.svc.now().timestamp()
        depth = GaugeMetricFamily("meridian_due_batches", "Batches waiting in the due set")
        depth.add_metric([], r.zcard(keys.DUE_BATCHES))
        oldest = GaugeMetricFamily(
            "meridian_due_oldest_age_seconds",
            "How long the oldest batch that is due has waited for the pump (0: none due)",
        )
        first = r.zrange(keys.DUE_BATCHES, 0, 0, withscores=True)
        oldest.add_metric([], max(0.0, now - float(first[0][1])) if first else 0.0)
        queues = GaugeMetricFamily(
            "meridian_queue_length", "Tasks waiting on each Celery queue", labels=["queue"]
        )
        for queue in keys.QUEUES:
            queues.add_metric([queue], r.llen(queue))
        yield from (depth, oldest, queues)
        tally = RedisTally(r)
        latency = HistogramMetricFamily(
            "meridian_send_latency_seconds",
            "Time a provider took to accept one message, by channel",
            labels=["channel"],
        )
        for channel, h in tally.send_latency().items():
            latency.add_metric([channel], [(_le(b), n) for b, n in h.buckets], sum_value=h.total)
        waits = CounterMetricFamily(
            "meridian_rate_limit_wait_seconds",
            "Time senders waited for the shared rate limit, by channel",
            labels=["channel"],
        )
        granted = CounterMetricFamily(
            "meridian_rate_limit_acquisitions",
            "Messages that went through the shared rate limit, by channel",
            labels=["channel"],
        )
        for channel, (seconds, count) in tally.rate_waits().items():
            waits.add_metric([channel], seconds)
            granted.add_metric([channel], count)
        webhooks = CounterMetricFamily(
            "meridian_webhook_requests",
            "Twilio webhook requests by route and verdict (accepted, refused, invalid, error)",
            labels=["route", "verdict"],
        )
        for (route, verdict), n in sorted(tally.webhooks().items()):
            webhooks.add_metric([route, verdict], n)
        workers = GaugeMetricFamily(
            "meridian_queue_workers",
            "Workers that reported consuming each queue within MERIDIAN_WORKER_SILENCE_S",
            labels=["queue"],
        )
        beats = self.svc.dispatcher.heartbeats() if self.svc.has_dispatcher else None
        limit = self.svc.settings.worker_silence_s
        for queue in keys.QUEUES:
            n = 0
            if beats is not None:
                n = sum(1 for age, qs in beats.workers.values() if queue in qs and age <= limit)
            workers.add_metric([queue], n)
        yield from (latency, waits, granted, webhooks, workers)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
