"""``hub demo``: synthetic department databases, demo clients, a recorded authorization, instructions."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx

from hub.auth.keys import KeyRing
from hub.clock import china_date, system_clock
from hub.db import hub_engine, open_hub_db
from hub.demo.generate import generate
from hub.settings import Settings
from hub.store.authorizations import AuthorizationStore
from hub.store.clients import ClientStore

DEMO_CLIENTS = [
    # client id, department, area, purposes, roles
    (
        "linping-civil-affairs",
        "civil_affairs",
        "330113",
        ["VER", "MON", "CASE", "STAT"],
        ["authorization_clerk"],
    ),
    ("hangzhou-civil-affairs", "civil_affairs", "3301", ["MON", "STAT"], []),
    ("linping-caseworker", "civil_affairs", "330113", ["MON", "CASE"], ["caseworker"]),  # alerts (monitoring)
    ("linping-medical-assistance", "medical_security", "330113", ["REF"], []),
    ("hangzhou-utilities", "utilities", "3301", ["REF"], []),
    ("zhejiang-privacy-officer", "audit_office", "33", ["AUDIT"], ["officer"]),
]


def _secrets_file(settings: Settings) -> Path:
    return settings.data_dir / "demo-clients.json"


def ensure_demo_clients(settings: Settings) -> dict[str, str]:
    """Register the demo clients once; their secrets live in <data_dir>/demo-clients.json (mode 0600)."""
    store = ClientStore(hub_engine(settings.database_url), scrypt_n=settings.client_secret_scrypt_n)
    path = _secrets_file(settings)
    secrets: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for client_id, dept, area, purposes, roles in DEMO_CLIENTS:
        if store.get(client_id) is None:
            _, secrets[client_id] = store.add(client_id, dept, area, purposes, roles)
        elif client_id not in secrets:
            secrets[client_id] = store.rotate_secret(client_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(secrets, f, indent=2)
    return secrets


def prepare_demo(settings: Settings, *, residents: int, seed: int, base_url: str) -> str:
    dept_dir = settings.data_dir / "departments"
    marker = dept_dir / ".generated.json"
    wanted = {"residents": residents, "seed": seed}
    if marker.exists() and json.loads(marker.read_text()) == wanted:
        golden = json.loads((dept_dir / ".golden.json").read_text())
    else:
        result = generate(dept_dir, residents=residents, seed=seed, progress=True)
        golden = {"id": result.golden_id, "household": result.golden_household}
        (dept_dir / ".golden.json").write_text(json.dumps(golden))
        marker.write_text(json.dumps(wanted))
    KeyRing(settings.key_dir).ensure()
    engine = open_hub_db(settings.database_url)
    secrets = ensure_demo_clients(settings)
    authz = AuthorizationStore(engine)
    today = china_date(system_clock())
    if not any(a.household_id == golden["household"] and not a.revoked for a in authz.list(golden["household"])):
        authz.record(
            golden["household"],
            "civil_affairs",
            "本人 (the applicant)",
            today - timedelta(days=30),
            today + timedelta(days=335),
            hashlib.sha256(b"demo authorization scan").hexdigest(),
            "demo-setup",
        )
    cid = "linping-civil-affairs"
    return f"""
Demo ready: {residents} synthetic residents in 12 department databases under {dept_dir}.
Golden scenario: ID {golden["id"]}, household {golden["household"]} (authorization on record).
Demo client secrets: {_secrets_file(settings)} (generated here, never committed).

Get a token (OAuth2 client credentials):
  curl -s -u {cid}:{secrets[cid]} -d grant_type=client_credentials {base_url}/oauth/token

Query (replace $TOKEN):
  curl -s {base_url}/graphql -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
    -H 'X-Hub-Purpose: CASE' -H 'X-Hub-Case: CASE-2026-0001' -H 'X-Hub-Officer: officer-wang' \\
    -d '{{"query":"{{ person(idNumber: \\"{golden["id"]}\\") {{ name household {{ address members {{ name relationToHead }} }} civilAffairs {{ tier monthlyAmount }} disability {{ category grade changeDate }} medical {{ outOfPocket12mBand }} employment {{ pensionMonthlyBand }} tax {{ incomeBand }} vehicles {{ hasNonExemptCar }} }} }}"}}'

Monitoring (docs/monitoring.md): the monitor reads every department's change events and raises alerts.
Write the golden scenario's event, as the disabled persons' federation would:
  hub --data-dir {settings.data_dir} demo event disability_changed {golden["id"]} --category 4 --grade 2
then list the alerts of 临平区 as the caseworker (client linping-caseworker, X-Hub-Purpose: MON):
  {{ alerts(filter: {{idNumber: "{golden["id"]}"}}) {{ alerts {{ id ruleId areaName estimatedMonthly programmes {{ nameZh monthlyAmount }} }} }} }}

GraphiQL: {base_url}/graphql   JWKS: {base_url}/.well-known/jwks.json
"""


# -- federation: the education department served by the demo subgraph (docs/federation.md) ----------------------


def start_demo_subgraph(settings: Settings, host: str, port: int) -> tuple[subprocess.Popen[bytes] | None, Settings]:
    """Start ``hub.demo.subgraph`` for the education department on ``port + 1`` and point the hub at it.

    Skipped when ``HUB_DEPT_EDUCATION_URL`` is set; if the subgraph does not come up, education stays on SQLite.
    """
    if settings.department_urls.get("education"):
        return None, settings
    base = f"http://{host}:{port + 1}"
    cmd = [sys.executable, "-m", "hub.demo.subgraph", "--db", str(settings.data_dir / "departments" / "education.sqlite"),
           "--host", host, "--port", str(port + 1), "--issuer", settings.issuer, "--exit-with-parent",
           "--jwks", f"http://{host}:{port}/.well-known/jwks.json"]  # fmt: skip
    proc = subprocess.Popen(cmd)  # noqa: S603 (our own module, fixed arguments)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                print(f"Education is served by the demo subgraph at {base}/graphql (see docs/federation.md).")
                urls = {**settings.department_urls, "education": f"{base}/graphql"}
                return proc, settings.replace(department_urls=urls)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.terminate()
    print("The demo subgraph did not start; education is read from its SQLite file.", file=sys.stderr)
    return None, settings
