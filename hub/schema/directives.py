"""The ``@disclosure`` schema directive: which department provides a field and in which form."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema_directive import Location

from hub.departments import DEPARTMENTS
from hub.policy.model import Form

DisclosureForm = strawberry.enum(
    Form,
    name="DisclosureForm",
    description="How a field's value is disclosed: raw, masked, band, predicate (yes/no), exists, aggregate.",
)


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="disclosure",
    description="Marks a field whose value comes from a department; policies grant it per consumer and purpose.",
)
class Disclosure:
    form: Form
    provider: str


FORM_WORDS = {
    Form.RAW: "raw value",
    Form.MASKED: "masked",
    Form.BAND: "band",
    Form.PREDICATE: "yes/no predicate; the raw value is never returned",
    Form.EXISTS: "exists (yes/no)",
    Form.AGGREGATE: "aggregate count; cells under 10 suppressed",
}


def disclosed(form: Form, provider: str, doc: str, **kwargs: Any) -> Any:
    """A ``strawberry.field`` carrying ``@disclosure`` and a description naming its provider."""
    dept = DEPARTMENTS[provider]
    description = f"{doc} Provider: {dept.name_en} ({dept.name_zh}). Form: {FORM_WORDS[form]}."
    return strawberry.field(description=description, directives=[Disclosure(form=form, provider=provider)], **kwargs)
