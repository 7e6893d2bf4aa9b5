"""The policy set in force: the policy files read against the schema's catalog, as of today (China time)."""

from __future__ import annotations

from hub.clock import Clock, china_date, system_clock
from hub.departments import DEPARTMENTS
from hub.policy.loader import CatalogEntry, load_policies
from hub.policy.model import PolicySet
from hub.schema import build_schema, catalog_of
from hub.settings import Settings


def load_policy_set(
    settings: Settings, catalog: dict[str, CatalogEntry] | None = None, clock: Clock = system_clock
) -> PolicySet:
    if catalog is None:
        catalog = catalog_of(build_schema())
    return load_policies(settings.policy_dir, DEPARTMENTS, catalog, china_date(clock()))
