"""The JSON API's bodies as pydantic models: requests are validated with them, replies
are built through them, and the OpenAPI document (openapi.py) is generated from them.

A campaign is sent and shown as ``CampaignDefinition`` itself, and findings as the
compliance lint's ``Finding``: one definition of each, shared with the CLI and console.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from campaigns.content.compliance_rules import Finding
from campaigns.content.definitions import CampaignDefinition, ScheduleSpec
from campaigns.domain.models import Channel
from campaigns.domain.states import CampaignState

_YES = frozenset({"1", "true", "yes", "on"})

# The instants the store hands over, sent as Python's isoformat() wrote them before.
Instant = Annotated[datetime, PlainSerializer(lambda d: d.isoformat(), return_type=str)]
IsoText = Annotated[str, Field(json_schema_extra={"format": "date-time"})]
# A form or JSON field read the way the token endpoint always read it: missing is "".
Text = Annotated[str, BeforeValidator(lambda v: str(v or ""))]
# A query flag: on for 1, true, yes or on (any case); anything else is off.
Flag = Annotated[bool, BeforeValidator(lambda v: str(v).lower() in _YES)]
Role = Literal["viewer", "marketer", "approver", "admin"]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Problem(_Reply):
    """One thing wrong with the request, and where: a field, a row and column, a line."""

    where: str
    reason: str


class ErrorReply(_Reply):
    error: str
    problems: list[Problem] = Field(default_factory=list)


class TokenRequest(BaseModel):
    """A JSON object or a form; an unknown name and a wrong password both answer 401."""

    username: Text = ""
    password: Text = ""


class TokenReply(_Reply):
    token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 - the scheme's name
    expires_in: int = Field(description="seconds")
    role: Role


class CampaignSummary(_Reply):
    id: int
    name: str
    status: CampaignState
    channels: list[Channel]
    schedule: ScheduleSpec
    updated_at: Instant


class CampaignList(_Reply):
    campaigns: list[CampaignSummary]


class ExportedCampaigns(_Reply):
    campaigns: list[str] = Field(description="the campaigns exported, by name")
    yaml: str = Field(
        description="their definitions, one YAML document each; "
        "`meridian campaigns import` and POST /campaigns read them back"
    )


class RunOfCampaign(_Reply):
    id: int
    occurrence: str
    status: str


class CampaignDetail(CampaignSummary):
    definition: CampaignDefinition
    findings: list[Finding]
    next_sends: list[Instant]
    runs: list[RunOfCampaign]


class AppliedCampaign(_Reply):
    id: int
    name: str
    findings: list[Finding]
    unacknowledged: list[Finding] = Field(
        description="health-claim findings to acknowledge before the campaign can be scheduled"
    )


class ReviewRequest(BaseModel):
    """Approve: the fingerprint of the version reviewed (refused if it changed since);
    send back: what should change."""

    fingerprint: str | None = Field(default=None, max_length=64)
    comment: str = Field(default="", max_length=2000)


class ReviewReply(_Reply):
    """Where a campaign's approval stands, judged against its content now."""

    name: str
    state: Literal["draft", "submitted", "approved", "sent_back", "changed"]
    approved: bool = Field(description="the content now is the content an approver approved")
    fingerprint: str = Field(description="sha256 of the definition and every template part now")
    by: str | None
    at: str | None
    comment: str | None
    says: str


class ScheduledCampaign(_Reply):
    name: str
    status: Literal[CampaignState.SCHEDULED] = CampaignState.SCHEDULED


class RunStarted(_Reply):
    run_id: int


class SkipReasonCount(_Reply):
    reason: str = Field(description="the ledger's code (campaigns.domain.states.SkipReason)")
    words: str = Field(description="what it means, in the words the console shows")
    count: int


class FailureGroup(_Reply):
    state: str = Field(description="failed (refused or given up) or undelivered (carrier)")
    words: str = Field(description="what the state means, in the words the console shows")
    code: str = Field(description="the provider's code (Twilio error, SMTP reply) or —")
    meaning: str = Field(description="what the code means, in plain words (empty if unknown)")
    reason: str
    count: int


class DeliveryReportItem(_Reply):
    delivery_id: int | None
    channel: str
    kind: str = Field(description="hard, soft, complaint, refused or sms-error")
    status: str | None = Field(description="DSN status, SMTP reply or Twilio code")
    source: str = Field(description="smtp, imap, mailgun or twilio")
    decision: str = Field(description="suppressed, counted, already-suppressed, ...")
    at: IsoText


class RunFailures(_Reply):
    run_id: int
    failures: list[FailureGroup]
    reports: list[DeliveryReportItem] = Field(
        description="bounces, complaints and SMS error codes on this run, with the decision"
    )


class RunStatus(_Reply):
    run_id: int
    campaign: str
    campaign_id: int
    occurrence: str
    trigger: str
    status: str
    started_at: IsoText
    finished_at: IsoText | None
    total: int
    by_state: dict[str, int]
    skipped_by_reason: dict[str, int]
    skip_reasons: list[SkipReasonCount] = Field(
        description="the skip reasons in plain words, the commonest first"
    )
    by_channel: dict[str, dict[str, int]]
    warnings: list[str] = Field(
        description="due work that no worker is at: which queue, since when, what to start"
    )


class ImportOptions(BaseModel):
    """The query of POST /patients/import."""

    dry_run: Flag = Field(default=False, description="check and count; write nothing")
    skip_invalid: Flag = Field(default=False, description="import the good rows, list the bad")


class SkippedRow(_Reply):
    row: int
    problems: list[Problem]


class ImportReply(_Reply):
    file: str
    rows: int = Field(description="non-blank data rows")
    valid: int
    inserted: int
    updated: int
    skipped: list[SkippedRow]
    dry_run: bool
    suppressed: int = Field(
        default=0, description="patients imported opted out: number or address suppressed"
    )


# the inbox ------------------------------------------------------------------------------


class InboxQuery(BaseModel):
    """The query of GET /inbox."""

    view: Literal["review", "booking", "all"] = Field(
        default="review", description="threads with open messages, open booking requests, or all"
    )


class ThreadPatient(_Reply):
    id: int
    external_id: str
    first_name: str | None
    last_name: str | None
    sms_opt_in: bool | None


class ThreadSummary(_Reply):
    message_id: int = Field(description="the thread's latest message; address the thread by it")
    from_phone: str
    patients: list[ThreadPatient]
    last_body: str
    last_kind: str
    last_actions: str | None = Field(description="what Meridian did about the last message")
    last_at: Instant
    open: int = Field(description="messages that need a person")
    messages: int


class InboxReply(_Reply):
    view: str
    open_total: int = Field(description="messages that need a person, in every thread")
    threads: list[ThreadSummary]


class ThreadMessage(_Reply):
    direction: Literal["in", "out"]
    id: int
    at: Instant
    body: str
    kind: str | None = Field(default=None, description="how an inbound text was read")
    actions: str | None = Field(default=None, description="what Meridian did about it")
    auto_reply: str | None = None
    needs_review: bool = False
    done_by: str | None = None
    sent_by: str | None = Field(default=None, description="the staff member who replied")
    state: str | None = Field(default=None, description="a reply's state: sent or failed")


class SuppressionState(_Reply):
    reason: str
    at: Instant
    actor: str


class ThreadReply(_Reply):
    message_id: int
    from_phone: str
    patients: list[ThreadPatient]
    suppressed: SuppressionState | None
    messages: list[ThreadMessage]


class ReplyRequest(BaseModel):
    body: Text = ""


class ReplySent(_Reply):
    reply_id: int
    state: Literal["sent", "failed"]
    error: str | None = None


class DoneReply(_Reply):
    marked: int


class SuppressRequest(BaseModel):
    reason: Text = ""


class Suppressed(_Reply):
    added: bool = Field(description="false when the number was already suppressed")


class RestoreRequest(BaseModel):
    channel: Channel
    reason: Text = ""


class ConsentNow(_Reply):
    patient_id: int
    sms_opt_in: bool | None
    email_opt_in: bool | None


def dump(reply: BaseModel) -> dict[str, Any]:
    """A reply as the JSON it is sent as."""
    return reply.model_dump(mode="json")


class AppointmentChange(BaseModel):
    """The body of PATCH /patients/{patient_id}: the patient's next appointment (a date,
    or null for none). A new future date is recorded as a booking."""

    model_config = ConfigDict(extra="forbid")
    next_appointment: date | None = Field(
        description="YYYY-MM-DD, or null when the patient has no appointment booked"
    )


class PatientPatched(_Reply):
    patient_id: int
    next_appointment: date | None
