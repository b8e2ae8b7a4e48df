"""The campaign catalogue: apply, save and load definitions (linted by
campaigns.content.campaign_lint), schedule them, and the one summary of a campaign
that the CLI, the API and the console show.

Nothing is sent, scheduled or run while a health-claim finding of the compliance
lint is unacknowledged (``compliance.acknowledged`` in the YAML). An acknowledgement
names one finding (rule, template, line, phrase and the exact sentence); the lint
runs again at every save, every schedule and every run, against the templates as
they are then, so an acknowledgement whose sentence changed no longer counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import yaml

from campaigns.clock import schedules
from campaigns.content import approval, compliance, variants

# The lint of a definition, named here too: every save, schedule and run asks it.
from campaigns.content.campaign_lint import SAMPLE_NAME as SAMPLE_NAME
from campaigns.content.campaign_lint import lint_definition as lint_definition
from campaigns.content.campaign_lint import sample_context as sample_context
from campaigns.content.copy import (
    Copy,
    from_block,
    ledger_key,
)
from campaigns.content.definitions import (
    CampaignDefinition,
    load_definition,
    parse_stored_definition,
)
from campaigns.domain.states import CampaignState
from campaigns.errors import InputError, NotFound, Problem

if TYPE_CHECKING:
    from campaigns.services import Services


@dataclass
class Applied:
    campaign_id: int
    name: str
    findings: list[dict[str, Any]] = field(default_factory=list)
    unacknowledged: list[dict[str, Any]] = field(default_factory=list)
    # Acknowledgements that name no current finding (the sentence changed, or moved).
    unmatched: list[dict[str, Any]] = field(default_factory=list)
    approved: bool = False  # approved by the operator who applied it (--approve)
    # It had been approved and this change made the approval lapse: back to draft.
    lapsed: bool = False


def run_templates_key(definition: CampaignDefinition, run: dict[str, Any]) -> str:
    """Where a run's messages come from: the copy it was started with, for its whole life."""
    version = run.get("template_version_id")
    return definition.templates if version is None else ledger_key(int(version))


def _unacknowledged(
    definition: CampaignDefinition, findings: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    acked = {a.key() for a in definition.compliance.acknowledged}
    return [
        f for f in findings if f["severity"] == "claim" and compliance.finding_key(f) not in acked
    ]


def unmatched_acknowledgements(
    definition: CampaignDefinition, findings: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The acknowledgements that cover no finding: the text they named has changed."""
    keys = {compliance.finding_key(f) for f in findings}
    return [
        a.model_dump(mode="json") for a in definition.compliance.acknowledged if a.key() not in keys
    ]


def mark_acknowledged(
    definition: CampaignDefinition, findings: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The findings, each with ``acknowledged``: {reason, by} of the acknowledgement
    that names it, or None; an unacknowledged claim also gets ``acknowledge_yaml``,
    the entry to add under compliance.acknowledged (reason left to fill in)."""
    by_key = {a.key(): a for a in definition.compliance.acknowledged}
    marked = []
    for f in findings:
        ack = by_key.get(compliance.finding_key(f))  # type: ignore[arg-type]
        entry = {**f, "acknowledged": {"reason": ack.reason, "by": ack.by} if ack else None}
        if f["severity"] == "claim" and ack is None:
            entry["acknowledge_yaml"] = acknowledgement_yaml(f)
        marked.append(entry)
    return marked


def acknowledgement_yaml(finding: dict[str, Any]) -> str:
    """A compliance.acknowledged entry naming this finding, for staff to complete."""
    entry: dict[str, Any] = {
        "rule": finding["rule"],
        "template": finding["template"],
        "line": finding["line"],
        "phrase": finding["phrase"],
        "sentence": finding["sentence"],
    }
    if int(finding.get("occurrence") or 1) > 1:
        entry["occurrence"] = finding["occurrence"]
    entry["reason"] = "<why this is not a health claim, or the evidence for it>"
    entry["by"] = "<who reviewed it>"
    text = yaml.safe_dump([entry], sort_keys=False, allow_unicode=True, width=1000)
    return text


def apply_campaign(svc: Services, path: Path, *, actor: str, approve: bool = False) -> Applied:
    definition = load_definition(path)
    return save_definition(svc, definition, actor=actor, source=str(path), approve=approve)


def save_definition(
    svc: Services,
    definition: CampaignDefinition,
    *,
    actor: str,
    source: str,
    approve: bool = False,
    may_acknowledge: bool = True,
) -> Applied:
    """Lint and save the definition; with a ``copy:`` block, its copy becomes the
    campaign's next version in the ledger, unless it is the current one already. A
    change to an approved campaign's content makes the approval lapse (back to draft).
    ``approve``: an operator applying a reviewed file approves it at once, audited as
    such, when it is lint-clean. ``may_acknowledge`` False (staff below admin): an
    acknowledgement the stored campaign does not have is refused."""
    if not may_acknowledge:
        refuse_new_acknowledgements(svc, definition, source)
    draft = None if definition.copy_block is None else from_block(definition.copy_block, source)
    findings = lint_definition(svc, definition, draft=draft)
    errors = [f for f in findings if f["severity"] == "error"]
    if errors:
        raise InputError(
            f"{source}: the compliance lint refused the campaign",
            [
                Problem(f"{f['template']}:{f['line'] or '-'}", f"{f['rule']}: {f['message']}")
                for f in errors
            ],
        )
    campaign_id = svc.campaigns.save(definition.name, definition.to_json(), findings, actor=actor)
    if draft is not None:
        current = svc.copies.current(definition.name)
        if current is None or Copy.from_row(current).digest() != draft.digest():
            svc.copies.add(campaign_id, draft.to_columns(), author=actor)
    if definition.ab_block is not None:
        variants.apply_ab_block(svc, campaign_id, definition.ab_block, actor=actor, source=source)
    open_claims = _unacknowledged(definition, findings)
    row, _ = load_campaign(svc, campaign_id)
    lapsed = approval.lapse_if_changed(svc, row, definition, actor=actor)
    approved = False
    if approve and not open_claims and row["status"] != CampaignState.CANCELLED:
        approval.record_operator_approval(
            svc, campaign_id, definition, actor=actor, via="apply --approve"
        )
        approved, lapsed = True, False
    return Applied(
        campaign_id,
        definition.name,
        findings,
        open_claims,
        unmatched_acknowledgements(definition, findings),
        approved,
        lapsed,
    )


def refuse_new_acknowledgements(svc: Services, definition: CampaignDefinition, source: str) -> None:
    """InputError naming each acknowledgement ``definition`` adds to the stored
    campaign's: only an admin acknowledges a finding (on the review page), so a
    marketer's YAML cannot carry a new one, whatever name it writes under ``by``."""
    row = svc.campaigns.get(definition.name)
    held: set[tuple[str, str, int, str, str, int]] = set()
    if row is not None:
        stored = parse_stored_definition(row["definition"], f"campaign {definition.name}")
        held = {a.key() for a in stored.compliance.acknowledged}
    added = [
        Problem(
            f"{source}: compliance.acknowledged[{i}]",
            "only an admin acknowledges a finding: ask one to do it on the campaign's "
            "review page, or leave this entry out",
        )
        for i, ack in enumerate(definition.compliance.acknowledged)
        if ack.key() not in held
    ]
    if added:
        raise InputError(f"{source}: new acknowledgements need an admin", added)


def load_campaign(svc: Services, key: str | int) -> tuple[dict[str, Any], CampaignDefinition]:
    row = svc.campaigns.get(key)
    if row is None:
        raise NotFound(f"no campaign named {key!r}")
    return row, parse_stored_definition(row["definition"], f"campaign {row['name']}")


def refuse_open_claims(
    svc: Services, row: dict[str, Any], definition: CampaignDefinition, what: str
) -> None:
    """Nothing is sent, scheduled or run now, while a health claim is unacknowledged.

    Lints the templates as they are now, not as they were when the campaign was
    saved: an edit to a template file since then is judged before anything is sent.
    Each A/B variant in the split is judged as well (its findings named "B: ...").
    """
    findings = lint_definition(svc, definition)
    errors = [f for f in findings if f["severity"] == "error"]
    open_claims = _unacknowledged(definition, findings)
    split = svc.variants.split(int(row["id"])) or {}
    for letter, version in svc.copies.current_variants(int(row["id"])).items():
        if letter in split:
            found = lint_definition(svc, definition, draft=Copy.from_row(version))
            errors += [
                {**f, "template": f"{letter}: {f['template']}"}
                for f in found
                if f["severity"] == "error"
            ]
            open_claims += [
                {**f, "template": f"{letter}: {f['template']}"}
                for f in _unacknowledged(definition, found)
            ]
    if errors or open_claims:
        raise InputError(
            f"campaign {row['name']}: the compliance lint refuses it "
            f"(claims need an acknowledgement in compliance.acknowledged) before it can "
            f"be {what}",
            [
                Problem(f"{f['template']}:{f['line'] or '-'}", f"{f['rule']}: {f['message']}")
                for f in errors
            ]
            + [
                Problem(
                    f"{f['template']}:{f['line']}",
                    f"{f['rule']}: {f['phrase']!r} in {f['sentence']!r}: {f['message']}",
                )
                for f in open_claims
            ],
        )


def schedule_campaign(svc: Services, key: str | int, *, actor: str) -> dict[str, Any]:
    """Allow the campaign's occurrences to start; refused while claims are unacknowledged.

    Only the ledger's side: campaigns.sending.control.schedule also writes the
    schedule entry the workers tick on.
    """
    row, definition = load_campaign(svc, key)
    ended = InputError(
        f"campaign {row['name']}: {row['status']}; apply it again (the name is free), "
        "or restore it if archived"
    )
    if row["status"] in (CampaignState.CANCELLED, CampaignState.ARCHIVED):
        raise ended
    refuse_open_claims(svc, row, definition, "scheduled")
    approval.refuse_unapproved(svc, row, definition, "scheduled")
    if not svc.campaigns.set_status(row["id"], CampaignState.SCHEDULED, actor=actor):
        raise InputError(f"campaign {row['name']}: cancelled or archived meanwhile")
    return row


# what the CLI, the API and the console show ------------------------------------------


def campaign_listing(row: dict[str, Any]) -> dict[str, Any]:
    """A campaign's line in a list: id, name, status, channels, schedule, updated_at."""
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "channels": row["definition"]["channels"],
        "schedule": row["definition"]["schedule"],
        "updated_at": row["updated_at"].isoformat(),
    }


@dataclass(frozen=True)
class CampaignSummary:
    """One campaign as staff see it: its row, definition, next sends and runs."""

    row: dict[str, Any]
    definition: CampaignDefinition
    next_sends: list[datetime]  # aware, on the clinic's clock
    runs: list[dict[str, Any]]  # newest first, as svc.runs.of_campaign gives them
    audience: int | None = None  # patients the audience selects today, when asked for

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``meridian campaigns show`` and ``GET /api/campaigns/<name>``."""
        data = {
            **campaign_listing(self.row),
            "definition": self.row["definition"],
            "findings": self.row["findings"],
            "next_sends": [d.isoformat() for d in self.next_sends],
            "runs": [
                {"id": r["id"], "occurrence": r["occurrence"], "status": r["status"]}
                for r in self.runs
            ],
        }
        if self.audience is not None:
            data["audience"] = self.audience
        return data


def campaign_summary(
    svc: Services, key: str | int, *, sends: int = 5, audience: bool = False
) -> CampaignSummary:
    """The campaign by name or id, with its next ``sends`` send times and its runs;
    with ``audience``, how many patients it selects today. NotFound if none."""
    row, definition = load_campaign(svc, key)
    now = svc.now()
    schedule = definition.schedule.to_schedule(svc.settings.clinic_timezone)
    count = None
    if audience:
        today = now.astimezone(ZoneInfo(svc.settings.clinic_timezone)).date()
        count = svc.patients.count_audience(definition.audience.model_dump(), today)
    return CampaignSummary(
        row=row,
        definition=definition,
        next_sends=schedules.next_sends(schedule, now, sends),
        runs=svc.runs.of_campaign(int(row["id"])),
        audience=count,
    )
