"""Streaming verification: the compact range gives every prefix's RFC 6962 root, and verify's memory does not
grow with the number of entries (it keeps the right edge of the tree, not every leaf)."""

from __future__ import annotations

import gc
import hashlib
import json
import random
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from hub.audit import store
from hub.audit.entry import GENESIS
from hub.audit.head import SignedHead
from hub.audit.merkle import EMPTY_ROOT, CompactRange, MerkleTree, leaf_hash
from hub.audit.store import open_audit_store
from hub.audit.verify import stream_log
from tests.audit.test_merkle import RFC_LEAVES, RFC_ROOTS, VECTORS_DIR, _b64
from tests.audit.test_verify import build_log

T0 = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)


def test_compact_range_gives_the_rfc6962_roots() -> None:
    r = CompactRange()
    assert r.root() == EMPTY_ROOT
    for n, data in enumerate(RFC_LEAVES, start=1):
        r.append(leaf_hash(data))
        assert r.root() == RFC_ROOTS[n - 1]


def test_compact_range_matches_the_vectors_roots() -> None:
    """Every root named in the transparency-dev vectors (../shared/vectors) comes out of the compact range."""
    prefix = CompactRange()
    roots = {0: prefix.root()}
    for data in RFC_LEAVES:
        prefix.append(leaf_hash(data))
        roots[prefix.size] = prefix.root()
    seen = 0
    for path in sorted(VECTORS_DIR.glob("inclusion/*/happy-path.json")):
        v = json.loads(path.read_text())
        assert roots[v["treeSize"]] == _b64(v["root"])
        seen += 1
    for path in sorted(VECTORS_DIR.glob("consistency/*/happy-path.json")):
        v = json.loads(path.read_text())
        assert (roots[v["size1"]], roots[v["size2"]]) == (_b64(v["root1"]), _b64(v["root2"]))
        seen += 1
    assert seen


def test_compact_range_matches_the_tree_and_stays_small() -> None:
    rng = random.Random(7)
    leaves = [rng.randbytes(32) for _ in range(1100)]
    tree = MerkleTree(leaves)
    r = CompactRange()
    for n, leaf in enumerate(leaves, start=1):
        r.append(leaf)
        assert r.root() == tree.root(n), n
        assert len(r._stack) == n.bit_count()  # one subtree root per 1 bit of the size
    copy = r.copy()
    copy.append(leaves[0])
    assert (r.size, copy.size, r.root()) == (1100, 1101, tree.root())


def _rows(n: int) -> Iterator[tuple[int, str, bytes]]:
    prev = GENESIS
    for seq in range(n):
        text = json.dumps({"seq": seq, "prev": prev, "officer": f"officer-{seq % 7}", "decision": "allow"})
        leaf = hashlib.sha256(b"\x00" + text.encode()).digest()
        yield seq, text, leaf
        prev = leaf.hex()


def _heads(n: int, sizes: list[int], key: ed25519.Ed25519PrivateKey) -> list[SignedHead]:
    wanted, heads, r = set(sizes), [], CompactRange()
    for _, _, leaf in _rows(n):
        r.append(leaf)
        if r.size in wanted:
            heads.append(SignedHead.sign(r.size, r.root(), T0 + timedelta(minutes=r.size), "k", key))
    return heads


def _peak(n: int) -> int:
    key = ed25519.Ed25519PrivateKey.generate()
    heads = _heads(n, [n // 4, n // 2, n], key)
    gc.collect()
    tracemalloc.start()
    try:
        report, size, roots = stream_log(_rows(n), heads, key.public_key(), 0, GENESIS, (), roots_at=[n // 3])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (report.ok, report.entries_checked, report.heads_checked, size) == (True, n, 3, n), report.problem
    assert roots[n // 3] == MerkleTree([leaf for _, _, leaf in _rows(n // 3)]).root()
    return peak


def test_streamed_verification_memory_does_not_grow_with_n() -> None:
    small, large = _peak(10_000), _peak(40_000)
    # four times the entries: the same few kilobytes (a whole-tree verifier grows by ~150 bytes an entry: +4.5 MB)
    assert large - small < 64 * 1024, (small, large)
    assert large < 256 * 1024, large


def _store_peak(settings_root: Path, n: int) -> int:
    settings = build_log(settings_root, n, heads=[n // 2, n], batch=2_000)
    with open_audit_store(settings) as opened:
        opened.archived  # noqa: B018 (the archives, none here, are read before measuring)
        gc.collect()
        tracemalloc.start()
        try:
            report = store.verify_store(opened)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert (report.ok, report.entries_checked, report.heads_checked) == (True, n, 2), report.problem
    return peak


def test_hub_audit_verify_memory_does_not_grow_with_n(tmp_path: Path) -> None:
    """The live store is streamed from the database (yield_per) and checked in O(log n) memory."""
    small = _store_peak(tmp_path / "small", 5_000)
    large = _store_peak(tmp_path / "large", 20_000)
    # 15,000 more entries: a whole-tree verifier would hold ~2.3 MB more (and ~20 MB of rows fetched at once
    # before); the streamed one holds a page of rows and the right edge of the tree, whatever n is
    assert large - small < 256 * 1024, (small, large)
    assert large < 6 * 1024 * 1024, large
