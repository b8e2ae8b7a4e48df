"""Patient CSV import: check every row, then upsert the good ones in one transaction.

The file is read once and never held in memory: good rows go to the store in
batches, which it upserts by external_id in one transaction, while every bad row's
problems are kept (with each external_id's first row, to find duplicates). If a row
is bad and ``skip_invalid`` is off, the scan still reads to the end to report every
bad row, then raises, so the transaction rolls back and nothing is written. A file
that changes while it is read aborts the transaction too.

The file's encoding, header and row numbers are ``patient_csv``'s; what a row's
fields must hold, and the problems named when they do not, ``patient_fields``'s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

from campaigns.domain.models import PatientRecord
from campaigns.errors import InputError, Problem
from campaigns.people.patient_csv import read_rows
from campaigns.people.patient_fields import country_code, forget, parse_row

logger = logging.getLogger(__name__)


class PatientStore(Protocol):
    def import_batches(
        self, batches: Iterable[Sequence[PatientRecord]], *, dry_run: bool, actor: str
    ) -> tuple[int, int] | tuple[int, int, int]:
        """Upsert every batch by external_id in ONE transaction (rolled back when dry_run).

        Returns (inserted, updated) or (inserted, updated, suppressed): how many of the
        patients were imported opted out because their number or address is on the
        suppression list. An exception raised while iterating ``batches`` must roll
        the transaction back.
        """
        ...


@dataclass(frozen=True)
class SkippedRow:
    """A bad row that ``skip_invalid`` left out, and why."""

    row: int
    problems: tuple[Problem, ...]


@dataclass
class ImportReport:
    """What an import did. ``rows`` counts non-blank data rows; ``valid`` the good ones."""

    file: str
    rows: int
    valid: int
    inserted: int
    updated: int
    skipped: list[SkippedRow]
    dry_run: bool
    suppressed: int = 0  # imported opted out: number or address on the suppression list

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        done = "would insert {}, would update {}" if self.dry_run else "inserted {}, updated {}"
        line = f"{self.file}: {_plural(self.rows, 'row')}, {self.valid} valid; " + done.format(
            self.inserted, self.updated
        )
        lines = [line + (" (dry run: nothing was written)" if self.dry_run else "")]
        if self.suppressed:
            lines.append(
                f"{_plural(self.suppressed, 'patient')} imported opted out: "
                "number or address on the suppression list"
            )
        if self.skipped:
            rows = _ranges([s.row for s in self.skipped])
            lines.append(f"skipped {_plural(len(self.skipped), 'bad row')}: {rows}")
            lines.extend(f"  {p}" for s in self.skipped for p in s.problems)
        return "\n".join(lines)


def import_patients(
    path: Path,
    store: PatientStore,
    *,
    region: str = "US",
    dry_run: bool = False,
    skip_invalid: bool = False,
    actor: str = "cli",
    batch_size: int = 1000,
) -> ImportReport:
    """Import a patient CSV: check every row, then upsert the good ones by external_id.

    Raises InputError listing every bad row (spreadsheet row numbers: the header is
    row 1, the first data row is 2) and imports nothing, unless ``skip_invalid``: then
    the good rows are imported and the report lists exactly the rows skipped.
    """
    country_code(region)  # an unknown region is a ConfigError before any row is read
    if batch_size < 1:
        raise InputError("batch_size must be at least 1")
    scan = _Scan(path, region, batch_size, all_or_nothing=not skip_invalid)
    try:
        inserted, updated, *more = store.import_batches(
            scan.batches(), dry_run=dry_run, actor=actor
        )
    finally:
        forget()
    suppressed = more[0] if more else 0
    bad = scan.bad
    skipped = [SkippedRow(number, tuple(bad[number])) for number in sorted(bad)]
    rows = scan.rows
    report = ImportReport(
        str(path), rows, rows - len(bad), inserted, updated, skipped, dry_run, suppressed
    )
    logger.info("patient import by %s: %s", actor, report.summary().partition("\n")[0])
    return report


class _Scan:
    """One pass over the file: good rows out in batches, every bad row's problems kept.

    The store writes the batches inside one transaction. At the first bad row of an
    all-or-nothing import the batches stop, but the scan reads on to report every
    bad row, then raises, so the store rolls back and nothing is imported. A file
    that changed while it was read raises too.
    """

    def __init__(self, path: Path, region: str, size: int, *, all_or_nothing: bool) -> None:
        self.path, self.region, self.size = path, region, size
        self.all_or_nothing = all_or_nothing
        self.rows = 0
        self.bad: dict[int, list[Problem]] = {}

    def batches(self) -> Iterator[list[PatientRecord]]:
        path = self.path
        before = _fingerprint(path)
        first_row_of: dict[str, int] = {}
        batch: list[PatientRecord] = []
        for number, row, problems in read_rows(path):
            self.rows += 1
            record = None if problems else parse_row(row, number, region=self.region)
            if isinstance(record, list):
                problems = record
            external_id = (row.get("external_id") or "").strip()
            if external_id and (first := first_row_of.setdefault(external_id, number)) != number:
                reason = f"repeats the external_id of row {first}; each patient must appear once"
                problems.append(Problem(f"row {number}, column external_id", reason))
            if problems:
                self.bad[number] = problems
                continue
            if isinstance(record, PatientRecord) and not (self.all_or_nothing and self.bad):
                batch.append(record)
                if len(batch) >= self.size:
                    yield batch
                    batch = []
        if _fingerprint(path) != before:
            raise InputError(
                f"{path} changed while it was being imported; nothing was imported. "
                "Import it again once nothing else is writing it."
            )
        if self.bad and self.all_or_nothing:
            problems = [p for number in sorted(self.bad) for p in self.bad[number]]
            raise InputError(
                f"{path}: {_plural(len(self.bad), 'bad row')}; nothing was imported", problems
            )
        if batch:
            yield batch


def _fingerprint(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError as e:
        raise InputError(f"{path}: cannot read the file ({e.strerror})") from None
    return stat.st_size, stat.st_mtime_ns


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _ranges(numbers: list[int]) -> str:
    """'rows 4, 9-12' from sorted row numbers."""
    spans: list[list[int]] = []
    for n in numbers:
        if spans and spans[-1][1] == n - 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    return ("row " if len(numbers) == 1 else "rows ") + text
