"""Campaign definitions to YAML and back, for operators who keep campaigns in git.

``export_yaml`` writes each campaign that holds its name (cancelled and archived ones
stay out) as one YAML document, in name order, fields in the definition's order;
``import_yaml`` reads one or more documents and saves each through the catalogue's
one apply path (lint included). Export, import into an empty ledger and export
again gives the same bytes: a definition is written as the model dumps it, which is
what the ledger stores after an import.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from campaigns.content import variants
from campaigns.content.catalogue import (
    Applied,
    load_campaign,
    refuse_new_acknowledgements,
    save_definition,
)
from campaigns.content.copybook import current_copy
from campaigns.content.definitions import CampaignDefinition, parse_definition
from campaigns.domain.states import FREED_NAME_STATES
from campaigns.errors import InputError, Problem

if TYPE_CHECKING:
    from campaigns.services import Services


def exported(svc: Services, definition: CampaignDefinition) -> dict[str, Any]:
    """One campaign as it is exported: its definition's fields, in order (an unset
    optional field left out, as a person would write the file)."""
    data = definition.model_dump(mode="json", exclude_none=True)
    # Copy written in the console or a ``copy:`` block is in the ledger, not a folder:
    # the export carries its newest version, and import saves it back through apply.
    copy = current_copy(svc, definition.name)
    if copy is not None:
        data["copy"] = copy
    row = svc.campaigns.get(definition.name)
    ab = None if row is None else variants.to_ab_block(svc, int(row["id"]))
    if ab is not None:
        data["ab"] = ab
    return data


def dump(documents: list[dict[str, Any]]) -> str:
    """The YAML text of ``documents``: each starts with '---', keys in model order."""
    return yaml.safe_dump_all(
        documents, sort_keys=False, allow_unicode=True, explicit_start=True, width=100
    )


def export_yaml(svc: Services, name: str | None = None) -> str:
    """The campaign ``name`` (NotFound if none), or every campaign holding its name."""
    return dump([exported(svc, d) for d in export_definitions(svc, name)])


def export_definitions(svc: Services, name: str | None = None) -> list[CampaignDefinition]:
    if name is not None:
        return [load_campaign(svc, name)[1]]
    return [
        load_campaign(svc, int(row["id"]))[1]
        for row in svc.campaigns.all()
        if row["status"] not in FREED_NAME_STATES
    ]


def export_files(svc: Services, folder: Path, name: str | None = None) -> list[Path]:
    """One ``<name>.yaml`` per campaign in ``folder`` (made if missing); the files."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for definition in export_definitions(svc, name):
        path = folder / f"{definition.name}.yaml"
        path.write_text(dump([exported(svc, definition)]), encoding="utf-8")
        written.append(path)
    return written


def read_yaml(text: str, source: str) -> list[CampaignDefinition]:
    """Every campaign in ``text`` (one or more YAML documents), all checked before any
    is saved; InputError names the document and the field."""
    try:
        documents = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        raise InputError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    if not documents:
        raise InputError(f"{source}: no campaign in it")
    definitions, problems = [], []
    for number, data in enumerate(documents, start=1):
        where = source if len(documents) == 1 else f"{source} (document {number})"
        try:
            definitions.append(parse_definition(data, where))
        except InputError as exc:
            problems += exc.problems or [Problem(where, exc.message)]
    names = [d.name for d in definitions]
    for twice in sorted({n for n in names if names.count(n) > 1}):
        problems.append(Problem(source, f"campaign {twice!r} is given twice"))
    if problems:
        raise InputError(f"{source}: nothing imported", problems)
    return definitions


def import_yaml(
    svc: Services, text: str, *, actor: str, source: str, may_acknowledge: bool = True
) -> list[Applied]:
    """Save every campaign of ``text`` (a new name makes a draft; a held name is
    updated), each linted as ``apply`` does. ``may_acknowledge`` False: a document
    adding an acknowledgement refuses the whole file before anything is saved."""
    definitions = read_yaml(text, source)
    if not may_acknowledge:
        for definition in definitions:
            refuse_new_acknowledgements(svc, definition, f"{source}: {definition.name}")
    return [
        save_definition(svc, definition, actor=actor, source=f"{source}: {definition.name}")
        for definition in definitions
    ]


def import_path(svc: Services, path: Path, *, actor: str) -> list[Applied]:
    """A YAML file of one or more campaigns, or a folder of ``*.yaml`` files."""
    files = sorted(path.glob("*.yaml")) + sorted(path.glob("*.yml")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{path}: no .yaml files in this folder")
    texts = []
    for file in files:
        try:
            texts.append((file, file.read_text(encoding="utf-8")))
        except FileNotFoundError:
            raise InputError(f"{file}: no such file") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{file}: not UTF-8 text (byte {exc.start})") from exc
    checked = [(file, read_yaml(text, str(file))) for file, text in texts]
    return [
        save_definition(svc, d, actor=actor, source=str(file))
        for file, definitions in checked
        for d in definitions
    ]
