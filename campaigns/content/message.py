"""One patient's message on one channel: context, render, smart-encode.

The one render path: the send loop, the sweeper's reconciliation, the preview and
the console's preview all build a message here, so what staff preview is what is
sent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from campaigns.content.copy import compile_templates, draft_key, from_block, templates_key
from campaigns.content.definitions import CampaignDefinition
from campaigns.content.rendering import Rendered, build_context
from campaigns.content.sms import smart_encode
from campaigns.domain.models import Channel, Recipient

if TYPE_CHECKING:
    from campaigns.services import Services


def render_message(
    svc: Services,
    definition: CampaignDefinition,
    recipient: Recipient,
    channel: Channel,
    *,
    delivery_id: int | None = None,
    templates: str | None = None,
) -> Rendered:
    """The campaign's message for this patient on ``channel``. Holds PHI: never log it.

    An email carries the patient's unsubscribe link (naming ``delivery_id`` when it
    is for a delivery); an SMS is smart-encoded when the settings say so. It renders
    ``templates`` (a key: a folder, or a version of the ledger's copy), by default the
    definition's inline ``copy:`` (a definition being edited) or else the campaign's
    copy as it is now (campaigns.content.copy.templates_key); a run passes its own.
    """
    url = svc.unsubscribe_url(recipient.patient_id, delivery_id) if channel == "email" else None
    context = build_context(
        first_name=recipient.first_name,
        last_name=recipient.last_name,
        clinic=svc.clinic,
        campaign=definition.name,
        unsubscribe_url=url,
    )
    renderer = svc.renderer
    if templates is not None:
        key = templates
    elif definition.copy_block is not None:
        # A definition being edited, its copy inline and not saved: preview that copy.
        draft = from_block(definition.copy_block, f"campaign {definition.name}")
        key = draft_key(draft)
        renderer = renderer.with_draft(key, compile_templates(draft))
    else:
        key = templates_key(svc, definition)
    rendered = renderer.render(key, channel, context)
    if delivery_id is not None:
        rendered = _with_short_links(svc, rendered, delivery_id)
    if channel == "sms" and svc.settings.sms_smart_encoding:
        return Rendered("sms", smart_encode(rendered.body))
    if url is not None:
        return Rendered(
            rendered.channel, rendered.body, rendered.subject, rendered.html, unsubscribe_url=url
        )
    return rendered


def _with_short_links(svc: Services, rendered: Rendered, delivery_id: int) -> Rendered:
    """The message with each link rewritten to the clinic's own short link, which
    counts the delivery's click (content.links); the unsubscribe link is kept."""
    rewriter = svc.link_rewriter(delivery_id)
    return Rendered(
        rendered.channel,
        rewriter.rewrite(rendered.body),
        rendered.subject,
        None if rendered.html is None else rewriter.rewrite(rendered.html, is_html=True),
        rendered.unsubscribe_url,
    )
