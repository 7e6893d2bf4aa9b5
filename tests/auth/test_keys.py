"""Several hub processes starting at once on one fresh data directory agree on one set of keys.

`hub serve` generates missing keys at start-up; two processes started together (as in a multi-process deployment,
or tests/pg/test_multiprocess.py) must neither crash on a half-written key file nor each invent their own
pseudonym key (which would split a resident's audit trail in two)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from hub.auth.keys import KeyRing

CHILD = """
import hashlib, json, os, sys, time
from pathlib import Path
from hub.auth.keys import KeyRing
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.001)
ring = KeyRing(Path(sys.argv[1]))
ring.ensure()
print(json.dumps({
    "kid": ring.active().kid,
    "pseudonym": hashlib.sha256(ring.pseudonym_key()).hexdigest(),
    "perturbation": hashlib.sha256(ring.perturbation_key()).hexdigest(),
    "audit": hashlib.sha256(ring.audit_public_path.read_bytes()).hexdigest(),
    "digest": hashlib.sha256(ring.digest_key()).hexdigest(),
}))
"""


def test_concurrent_first_start_agrees_on_one_key_set(tmp_path: Path) -> None:
    key_dir, go = tmp_path / "keys", tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(key_dir), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(1.0)  # let every child import and reach the start line
    go.touch()
    results = []
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out))
    assert len({json.dumps(r, sort_keys=True) for r in results}) == 1, results
    ring = KeyRing(key_dir)
    assert [k.kid for k in ring.token_keys()] == [results[0]["kid"]]
    assert results[0]["pseudonym"] == hashlib.sha256(ring.pseudonym_key()).hexdigest()
    assert results[0]["perturbation"] == hashlib.sha256(ring.perturbation_key()).hexdigest()
    assert sorted(p.name for p in key_dir.iterdir()) == [
        ".lock",
        "audit-digest",
        "audit-private.pem",
        "audit-public.pem",
        "perturbation.key",
        "pseudonym.key",
        "tokens",
    ]
    assert os.stat(key_dir / "pseudonym.key").st_mode & 0o777 == 0o600
    assert os.stat(key_dir / "perturbation.key").st_mode & 0o777 == 0o600
    assert os.stat(key_dir / "audit-private.pem").st_mode & 0o777 == 0o600
    (digest_file,) = (key_dir / "audit-digest").iterdir()  # one audit digest key, the one every process uses
    assert hashlib.sha256(digest_file.read_bytes()).hexdigest() == results[0]["digest"]
    assert os.stat(digest_file).st_mode & 0o777 == 0o600


def test_token_keys_cached_but_rotation_by_another_process_is_seen(tmp_path: Path) -> None:
    serving, cli = KeyRing(tmp_path / "keys"), KeyRing(tmp_path / "keys")  # e.g. `hub serve` and `hub keys rotate`
    serving.ensure()
    first = serving.token_keys()
    assert serving.token_keys()[0].key is first[0].key  # unchanged folder: the parsed key is reused
    new = cli.rotate(now=first[0].created + 10)
    assert [k.kid for k in serving.token_keys()] == [first[0].kid, new.kid]
    assert serving.active().kid == new.kid
    assert cli.prune(token_ttl=0, now=new.created + 3600) == [first[0].kid]
    assert [k.kid for k in serving.token_keys()] == [new.kid]
