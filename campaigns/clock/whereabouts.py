"""Where a patient might be: every candidate (zone, state), with the evidence for each.

COMPLIANCE.md, "where the recipient is": the zone of the patient's address; the
phone's area code as a proxy when there is none; where address and area code
disagree, or an area code spans zones, send only when lawful in every candidate.
Florida and Oklahoma presume a resident from a local area code, so the area code's
state stays a candidate whatever the address says.

The evidence, strongest first:

- **time zone**: the zone stored with the patient (their address's zone);
- **address state**: the state stored with the patient; without a stored zone,
  every zone of that state (the ``us`` package's table);
- **area code**: the phone's state and zones (campaigns.clock.geography);
- **clinic**: nothing at all is known, so every zone the clinic serves
  (MERIDIAN_CLINIC_SERVICE_ZONES), under the federal rules only.

The address (zone and state) and the area code agree when they name the same
state, or, with no address state, when the stored zone keeps the clock of one of
the area code's zones; then the address narrows the area code. Otherwise both are
candidates.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal

from campaigns.clock.geography import (
    PhoneArea,
    checked_zone,
    patient_state,
    phone_area,
    state_zones,
    zones_agree,
)
from campaigns.clock.quiet_hours import presumes_resident
from campaigns.settings import US_SERVICE_ZONES

__all__ = [
    "US_SERVICE_ZONES",
    "Candidate",
    "Evidence",
    "Whereabouts",
    "candidate_states",
    "locate",
]

EvidenceKind = Literal["time zone", "address state", "area code", "clinic"]


@dataclass(frozen=True, slots=True)
class Evidence:
    """One thing known about where the patient is, and what it says."""

    kind: EvidenceKind
    value: str  # "America/Chicago", "CA", "907", "the zones the clinic serves"
    zones: tuple[str, ...]
    state: str | None

    def describe(self) -> str:
        zones = ", ".join(self.zones) or "no zone"
        state = f"; state {self.state}" if self.state else ""
        presumed = (
            f" ({self.state} presumes a resident from a local area code)"
            if self.kind == "area code" and self.state and presumes_resident(self.state)
            else ""
        )
        return f"{self.kind} {self.value}: {zones}{state}{presumed}"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A place the patient might be: a zone, and the state whose rules apply there."""

    zone: str
    state: str | None


@dataclass(frozen=True, slots=True)
class Whereabouts:
    """Every candidate, the evidence they come from and why these."""

    candidates: tuple[Candidate, ...]
    evidence: tuple[Evidence, ...]
    reason: str

    @property
    def states(self) -> tuple[str, ...]:
        return tuple(sorted({c.state for c in self.candidates if c.state}))

    @property
    def zones(self) -> tuple[str, ...]:
        return tuple(sorted({c.zone for c in self.candidates}))

    @property
    def certain(self) -> bool:
        return len(self.candidates) == 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidates": [{"zone": c.zone, "state": c.state} for c in self.candidates],
            "evidence": [
                {
                    "kind": e.kind,
                    "value": e.value,
                    "zones": list(e.zones),
                    "state": e.state,
                    "says": e.describe(),
                }
                for e in self.evidence
            ],
            "reason": self.reason,
        }


def locate(
    timezone: str | None,
    state: str | None,
    phone: str | None,
    service_zones: tuple[str, ...] = US_SERVICE_ZONES,
    *,
    year: int,
) -> Whereabouts:
    """Where a patient with these stored values might be.

    A stored zone that is not an IANA zone, or a state that is not a USPS code,
    raises InputError (campaigns.clock.geography): guessing would risk texting
    someone at night.
    """
    # The phone matters only through its area: cached by that, a clinic's patients
    # share a few thousand answers however many distinct numbers they have (cached by
    # the number, the 35,900 numbers of 100,000 synthetic patients held 74 MB of
    # answers in every worker process, measured).
    return _locate(timezone, state, phone_area(phone), service_zones, year=year)


@functools.lru_cache(maxsize=1 << 14)
def _locate(
    timezone: str | None,
    state: str | None,
    area: PhoneArea | None,
    service_zones: tuple[str, ...],
    *,
    year: int,
) -> Whereabouts:
    zone = timezone.strip() if timezone and timezone.strip() else None
    if zone is not None:
        checked_zone(zone)
    home = patient_state(state, None) if state and state.strip() else None
    evidence: list[Evidence] = []
    address: list[Candidate] = []
    if zone is not None:
        evidence.append(Evidence("time zone", zone, (zone,), None))
    if home is not None:
        evidence.append(Evidence("address state", home, state_zones(home), home))
    if area is not None:
        evidence.append(Evidence("area code", area.area_code, area.zones, area.state))
    if zone is not None or home is not None:
        zones = (zone,) if zone is not None else state_zones(home or "")
        address = [Candidate(z, home) for z in zones]
    if area is None or not (area.zones or area.state):
        if address and all(c.zone for c in address):
            return _found(address, evidence, "the address alone")
        return _clinic(service_zones, evidence, home)
    if not address:
        return _found(_area_candidates(area, service_zones), evidence, "the area code alone")
    agree, why = _agreement(zone, home, area, year)
    if agree:
        if zone is None and area.zones:
            # Same state: the area code's zones are the finer evidence (208 is Idaho,
            # and either side of its time-zone line).
            narrowed = [Candidate(z, home) for z in area.zones]
            return _found(narrowed, evidence, why)
        return _found([Candidate(c.zone, home or area.state) for c in address], evidence, why)
    return _found(address + _area_candidates(area, service_zones), evidence, why)


def candidate_states(state: str | None, phone: str | None) -> tuple[str, ...]:
    """The states whose rules may apply: the address's and the area code's (the caps
    of every one of them count). Depends on neither the zone nor the clinic."""
    home = patient_state(state, None) if state and state.strip() else None
    area = phone_area(phone)
    found = {home, area.state if area else None}
    return tuple(sorted(s for s in found if s))


def _agreement(zone: str | None, home: str | None, area: PhoneArea, year: int) -> tuple[bool, str]:
    if home is not None and area.state is not None:
        if home == area.state:
            return True, f"address state and area code {area.area_code} agree ({home})"
        return False, (
            f"address state {home} and area code {area.area_code} ({area.state}) disagree: "
            "lawful in both"
        )
    if home is not None:
        return True, f"area code {area.area_code} names no state; the address ({home}) decides"
    assert zone is not None  # an address without a state has its zone
    if not area.zones:
        return True, f"area code {area.area_code} names no zone; the stored zone decides"
    if any(zones_agree((zone, z), year) for z in area.zones):
        return True, f"stored zone {zone} is one of area code {area.area_code}'s"
    return False, (
        f"stored zone {zone} is not area code {area.area_code}'s "
        f"({', '.join(area.zones)}): lawful in every one"
    )


def _area_candidates(area: PhoneArea, service_zones: tuple[str, ...]) -> list[Candidate]:
    zones = area.zones or (state_zones(area.state) if area.state else ()) or service_zones
    return [Candidate(z, area.state) for z in zones]


def _clinic(
    service_zones: tuple[str, ...], evidence: list[Evidence], home: str | None
) -> Whereabouts:
    evidence.append(Evidence("clinic", "the zones the clinic serves", service_zones, None))
    reason = "no zone, state or area code on file: every zone the clinic serves"
    return _found([Candidate(z, home) for z in service_zones], evidence, reason)


def _found(candidates: list[Candidate], evidence: list[Evidence], reason: str) -> Whereabouts:
    unique = sorted(set(candidates), key=lambda c: (c.zone, c.state or ""))
    return Whereabouts(tuple(unique), tuple(evidence), reason)
