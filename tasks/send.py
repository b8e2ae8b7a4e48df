"""The send task: claim and send one batch of deliveries."""

from __future__ import annotations

from campaigns.sending import delivery
from campaigns.sending.batches import Batch
from tasks.app import app, services


@app.task(name="meridian.send.batch", acks_late=True, reject_on_worker_lost=True)
def send_batch(run_id: int, delivery_ids: list[int]) -> dict[str, int]:
    return delivery.send_batch(services(), Batch(run_id, delivery_ids)).counts
