"""The API's models of a run's A/B results (GET /api/runs/{run_id}/variants), kept
apart from schemas.py: campaigns.sending.ab_results's dictionaries, validated."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class VariantFigures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    variant: str
    percent: int  # of patients, as the run's split said
    patients: int
    sent: int  # messages handed to a provider
    texts_sent: int  # the SMS among them (only texts get delivery receipts)
    delivered: int
    undelivered: int
    failed: int
    skipped: int
    clicked: int | None  # None: not counted
    booked: int | None


class VariantComparison(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: str  # delivered, clicked, booked
    variants: list[str]  # [A, the other]
    difference_points: float  # the other's rate minus A's, in percentage points
    p_value: float | None  # two-proportion z-test; None: samples too small
    more_than_chance: bool
    says: str


class AbResults(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: dict[str, int]
    says: str
    variants: list[VariantFigures]
    comparisons: list[VariantComparison]


class RunVariants(BaseModel):
    model_config = ConfigDict(extra="forbid")

    run_id: int
    ab: AbResults | None  # None: the run had no A/B test
