"""The OpenAPI 3.1 document served at /api/openapi.json, generated from schemas.py.

Each operation names the models its route validates its body with and builds its
reply through, so the document's schemas are the API's own; ``OPERATIONS`` is the
one list of what /api serves (a test checks every route is in it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from campaigns.content.definitions import CampaignDefinition
from campaigns.web.views import ab_schemas
from campaigns.web.views import schemas as s

Body = type[BaseModel] | dict[str, Any]  # a model, or a schema for a body no model reads

_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
_RUN = {"name": "run_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_MESSAGE = {"name": "message_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_PATIENT = {"name": "patient_id", "in": "path", "required": True, "schema": {"type": "integer"}}
_CSV: dict[str, Any] = {"type": "string", "description": "a patient CSV, header row first"}
_UPLOAD: dict[str, Any] = {
    "type": "object",
    "required": ["file"],
    "properties": {"file": {"type": "string", "contentMediaType": "text/csv"}},
}
_LOG_CSV: dict[str, Any] = {
    "type": "string",
    "contentMediaType": "text/csv",
    "description": "header row first; streamed",
}
_DOCUMENT: dict[str, Any] = {
    "type": "object",
    "description": "this OpenAPI 3.1 document",
    "required": ["openapi", "info", "paths"],
}
_REFUSALS = {
    400: "The body is not what this route reads",
    401: "No valid bearer token",
    403: "The token's role may not do this",
    404: "No such campaign or run",
    409: "The campaign is not in a state that allows this",
    415: "The body's Content-Type is not one this route reads",
    502: "The provider refused the message; the reply is recorded as failed",
    422: "What was wrong, and where",
    429: "Too many failed sign-ins for this username; see Retry-After",
    503: "Redis (the broker) could not be reached; nothing was done",
}


@dataclass(frozen=True)
class Operation:
    method: Literal["get", "post", "patch"]
    path: str  # under /api
    summary: str
    role: str | None  # the least role; None for the one open route
    reply: type[BaseModel] | None  # None: this document (or ``media``'s, below)
    ok: int = 200
    body: Mapping[str, Body] = field(default_factory=dict)  # media type -> what reads it
    parameters: tuple[dict[str, Any], ...] = ()
    refusals: tuple[int, ...] = ()
    media: tuple[str, dict[str, Any]] | None = None  # a reply not JSON: type and schema


def _query(model: type[BaseModel]) -> tuple[dict[str, Any], ...]:
    schema = model.model_json_schema()
    return tuple(
        {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", ()),
            "description": prop.pop("description", ""),
            "schema": prop,
        }
        for name, prop in schema["properties"].items()
    )


_CONTROL = (404, 422, 503)
OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post",
        "/token",
        "Trade a username and password for a bearer token (an hour)",
        None,
        s.TokenReply,
        body={
            "application/json": s.TokenRequest,
            "application/x-www-form-urlencoded": s.TokenRequest,
        },
        refusals=(400, 401, 429),
    ),
    Operation("get", "/campaigns", "List campaigns", "viewer", s.CampaignList),
    Operation(
        "post",
        "/campaigns",
        "Create or update a campaign from its YAML (or the same fields as JSON)",
        "marketer",
        s.AppliedCampaign,
        body={"application/yaml": CampaignDefinition, "application/json": CampaignDefinition},
        refusals=(415, 422),
    ),
    Operation(
        "get",
        "/export/campaigns",
        "Export every current campaign's definition as YAML",
        "viewer",
        s.ExportedCampaigns,
    ),
    Operation(
        "get",
        "/export/campaigns/{name}",
        "Export one campaign's definition as YAML",
        "viewer",
        s.ExportedCampaigns,
        parameters=(_NAME,),
        refusals=(404,),
    ),
    Operation(
        "get",
        "/campaigns/{name}",
        "Show a campaign: definition, lint findings, next sends, runs",
        "viewer",
        s.CampaignDetail,
        parameters=(_NAME,),
        refusals=(404,),
    ),
    Operation(
        "post",
        "/campaigns/{name}/schedule",
        "Schedule an approved campaign: its occurrences start on time",
        "marketer",
        s.ScheduledCampaign,
        parameters=(_NAME,),
        refusals=_CONTROL,
    ),
    Operation(
        "get",
        "/campaigns/{name}/review",
        "Where the campaign's approval stands (fingerprint of its content now)",
        "viewer",
        s.ReviewReply,
        parameters=(_NAME,),
        refusals=(404,),
    ),
    Operation(
        "post",
        "/campaigns/{name}/submit",
        "Submit the campaign for approval",
        "marketer",
        s.ReviewReply,
        parameters=(_NAME,),
        refusals=(404, 422),
    ),
    Operation(
        "post",
        "/campaigns/{name}/approve",
        "Approve this version (not the submitter's own while the two-person rule is on)",
        "approver",
        s.ReviewReply,
        body={"application/json": s.ReviewRequest},
        parameters=(_NAME,),
        refusals=(404, 422),
    ),
    Operation(
        "post",
        "/campaigns/{name}/send-back",
        "Send a submitted campaign back to its author with a comment",
        "approver",
        s.ReviewReply,
        body={"application/json": s.ReviewRequest},
        parameters=(_NAME,),
        refusals=(404, 422),
    ),
    Operation(
        "post",
        "/campaigns/{name}/run",
        "Run now: start this occurrence's run",
        "marketer",
        s.RunStarted,
        ok=202,
        parameters=(_NAME,),
        refusals=(*_CONTROL, 409),
    ),
    Operation(
        "get",
        "/runs/{run_id}",
        "A run's status and counts",
        "viewer",
        s.RunStatus,
        parameters=(_RUN,),
        refusals=(404,),
    ),
    Operation(
        "get",
        "/runs/{run_id}/failures",
        "A run's failures with their codes in plain words, and its delivery reports",
        "viewer",
        s.RunFailures,
        parameters=(_RUN,),
        refusals=(404,),
    ),
    *(
        Operation(
            "post",
            f"/runs/{{run_id}}/{action}",
            f"{action.capitalize()} a run",
            "marketer",
            s.RunStatus,
            parameters=(_RUN,),
            refusals=_CONTROL,
        )
        for action in ("pause", "resume", "cancel")
    ),
    Operation(
        "get",
        "/runs/{run_id}/export.csv",
        "A run's message log as CSV: per delivery its id, the patient's external id, "
        "channel, state, times, skip reason, error code, clicked and booked; no message "
        "bodies; cells a spreadsheet would read as formulas start with a quote",
        "viewer",
        None,
        parameters=(_RUN,),
        refusals=(404,),
        media=("text/csv", _LOG_CSV),
    ),
    Operation(
        "get",
        "/runs/{run_id}/results.csv",
        "A run's results as CSV, one figure per row (section, channel, item, count, "
        "words): deliveries by channel and state, skip reasons and failures in words, "
        "clicks and bookings, each A/B variant's figures; formula-safe like the log",
        "viewer",
        None,
        parameters=(_RUN,),
        refusals=(404,),
        media=("text/csv", _LOG_CSV),
    ),
    Operation(
        "patch",
        "/patients/{patient_id}",
        "Set a patient's next appointment; a new future date is recorded as a booking, "
        "attributed to the run of the latest delivery sent within the booking window",
        "marketer",
        s.PatientPatched,
        body={"application/json": s.AppointmentChange},
        parameters=(_PATIENT,),
        refusals=(404, 422),
    ),
    Operation(
        "get",
        "/runs/{run_id}/variants",
        "A run's A/B results per variant, with the note on chance",
        "viewer",
        ab_schemas.RunVariants,
        parameters=(_RUN,),
        refusals=(404,),
    ),
    Operation(
        "post",
        "/patients/import",
        "Import a patient CSV",
        "marketer",
        s.ImportReply,
        body={"text/csv": _CSV, "multipart/form-data": _UPLOAD},
        parameters=_query(s.ImportOptions),
        refusals=(415, 422),
    ),
    Operation(
        "get",
        "/inbox",
        "Threads of patients' texts, one per number, open ones first",
        "viewer",
        s.InboxReply,
        parameters=_query(s.InboxQuery),
        refusals=(422,),
    ),
    Operation(
        "get",
        "/inbox/{message_id}",
        "The thread of this message's number: every text and staff reply",
        "viewer",
        s.ThreadReply,
        parameters=(_MESSAGE,),
        refusals=(404,),
    ),
    Operation(
        "post",
        "/inbox/{message_id}/reply",
        "Send an informational text to the thread's number (502: the provider refused it)",
        "marketer",
        s.ReplySent,
        ok=201,
        body={"application/json": s.ReplyRequest},
        parameters=(_MESSAGE,),
        refusals=(404, 422, 502),
    ),
    Operation(
        "post",
        "/inbox/{message_id}/done",
        "Mark the thread's open messages done",
        "marketer",
        s.DoneReply,
        parameters=(_MESSAGE,),
        refusals=(404,),
    ),
    Operation(
        "post",
        "/inbox/{message_id}/suppress",
        "Put the thread's number on the suppression list, with a reason",
        "marketer",
        s.Suppressed,
        body={"application/json": s.SuppressRequest},
        parameters=(_MESSAGE,),
        refusals=(404, 422),
    ),
    Operation(
        "post",
        "/patients/{patient_id}/consent/restore",
        "Restore a consent a reply was wrongly read as withdrawing, with a reason",
        "marketer",
        s.ConsentNow,
        body={"application/json": s.RestoreRequest},
        parameters=(_PATIENT,),
        refusals=(404, 422),
    ),
    Operation("get", "/openapi.json", "This document", "viewer", None),
)


def build(operations: tuple[Operation, ...] = OPERATIONS) -> dict[str, Any]:
    """The OpenAPI document of ``operations``, their models under components/schemas."""
    wanted: list[tuple[type[BaseModel], JsonSchemaMode]] = [(s.ErrorReply, "serialization")]
    for op in operations:
        if op.reply is not None:
            wanted.append((op.reply, "serialization"))
        wanted += [(b, "validation") for b in op.body.values() if isinstance(b, type)]
    refs, top = models_json_schema(
        list(dict.fromkeys(wanted)), ref_template="#/components/schemas/{model}"
    )
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        reply = _DOCUMENT if op.reply is None else refs[(op.reply, "serialization")]
        media, schema = op.media or ("application/json", reply)
        responses: dict[str, Any] = {
            str(op.ok): {"description": "OK", "content": {media: {"schema": schema}}}
        }
        refused = (401, 403, *op.refusals) if op.role else op.refusals
        for status in sorted(set(refused)):
            responses[str(status)] = {"$ref": f"#/components/responses/{status}"}
        spec: dict[str, Any] = {
            "operationId": _operation_id(op),
            "summary": op.summary,
            "description": f"Needs role {op.role} or above." if op.role else "Open to anyone.",
            "responses": responses,
        }
        if op.role is None:
            spec["security"] = []
        if op.parameters:
            spec["parameters"] = list(op.parameters)
        if op.body:
            content = {
                media: {"schema": refs[(b, "validation")] if isinstance(b, type) else b}
                for media, b in op.body.items()
            }
            spec["requestBody"] = {"required": True, "content": content}
        paths.setdefault(op.path, {})[op.method] = spec
    error = refs[(s.ErrorReply, "serialization")]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Meridian API", "version": "1"},
        "servers": [{"url": "/api"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": top.get("$defs", {}),
            "responses": {
                str(status): {
                    "description": text,
                    "content": {"application/json": {"schema": error}},
                }
                for status, text in _REFUSALS.items()
            },
        },
    }


def _operation_id(op: Operation) -> str:
    words = [w.strip("{}") for w in op.path.replace(".", "/").split("/") if w]
    return "_".join([op.method, *words])


OPENAPI = build()
