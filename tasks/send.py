"""The send task: claim and send one batch of deliveries."""

from __future__ import annotations

from campaigns.domain.models import Batch
from campaigns.sending import delivery
from tasks.app import app, services
from tasks.dispatcher import SEND_BATCH


@app.task(name=SEND_BATCH, acks_late=True, reject_on_worker_lost=True)
def send_batch(run_id: int, delivery_ids: list[int]) -> dict[str, int]:
    return delivery.send_batch(services(), Batch(run_id, delivery_ids)).counts
