"""Merkle tree construction refuses malformed leaf hashes, and every refusal has its exact message.

Gap 5 of issue 19: ``test_wrong_length_leaf_refused_everywhere`` (a leaf hash of 31 or 33 bytes, or a
32-character ``str``, is refused by the constructor, ``append``, ``extend``, the bulk root and both proof
builders, and leaves the tree unchanged).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest

from hub.audit.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    MerkleTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)

LEAVES = [leaf_hash(bytes([i])) for i in range(8)]
BAD: list[Any] = [b"\x00" * 31, b"\x00" * 33, b"", "a" * 32, bytearray(32)]
MESSAGE = "every leaf hash must be 32 bytes"


def test_constants_and_primitives() -> None:
    assert HASH_SIZE == 32
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()


@pytest.mark.parametrize("bad", BAD, ids=["31", "33", "empty", "str", "bytearray"])
def test_wrong_length_leaf_refused_everywhere(bad: Any) -> None:
    for build in (
        lambda: MerkleTree([*LEAVES[:3], bad]),
        lambda: root_from_leaf_hashes([*LEAVES[:3], bad]),
        lambda: inclusion_proof([*LEAVES[:3], bad], 0),
        lambda: consistency_proof([*LEAVES[:3], bad], 1),
    ):
        with pytest.raises(ValueError) as info:
            build()
        assert str(info.value) == MESSAGE
    tree = MerkleTree(LEAVES[:3])
    root = tree.root()
    with pytest.raises(ValueError, match=MESSAGE):
        tree.append(bad)
    with pytest.raises(ValueError, match=MESSAGE):
        tree.extend([LEAVES[3], bad])
    assert tree.size == 3 and tree.root() == root  # nothing was added
    tree.append(LEAVES[3])
    assert tree.root() == root_from_leaf_hashes(LEAVES[:4])


def test_tree_from_a_generator() -> None:
    tree = MerkleTree(h for h in LEAVES)
    assert len(tree) == tree.size == 8
    assert tree.root() == root_from_leaf_hashes(LEAVES)
    assert tree.root(0) == EMPTY_ROOT and MerkleTree().root() == EMPTY_ROOT


def test_small_roots_by_hand() -> None:
    a, b, c = LEAVES[:3]
    assert root_from_leaf_hashes([]) == EMPTY_ROOT
    assert root_from_leaf_hashes([a]) == a
    assert root_from_leaf_hashes([a, b]) == node_hash(a, b)
    assert root_from_leaf_hashes([a, b, c]) == node_hash(node_hash(a, b), c)
    for n in range(1, 9):
        tree = MerkleTree()
        for h in LEAVES[:n]:
            tree.append(h)
        assert tree.root() == root_from_leaf_hashes(LEAVES[:n]) == MerkleTree(LEAVES[:n]).root()


def test_generation_messages() -> None:
    tree = MerkleTree(LEAVES[:4])
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: inclusion_proof(LEAVES[:4], 4), "leaf index 4 is outside a tree of size 4"),
        (lambda: inclusion_proof(LEAVES[:4], -1), "leaf index -1 is outside a tree of size 4"),
        (lambda: consistency_proof(LEAVES[:4], 0), "old size 0 must be in 1..4"),
        (lambda: consistency_proof(LEAVES[:4], 5), "old size 5 must be in 1..4"),
        (lambda: tree.root(5), "size 5 is outside 0..4"),
        (lambda: tree.root(-1), "size -1 is outside 0..4"),
        (lambda: tree.inclusion_proof(4), "leaf index 4 is outside a tree of size 4"),
        (lambda: tree.consistency_proof(2, 5), "size 5 is outside 0..4"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == message
    assert consistency_proof(LEAVES[:4], 4) == [] == tree.consistency_proof(4)
    assert tree.inclusion_proof(0, 1) == [] and inclusion_proof(LEAVES[:1], 0) == []


def test_verification_messages() -> None:
    tree = MerkleTree(LEAVES)
    root = tree.root()
    proof = tree.inclusion_proof(2)
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: verify_inclusion(LEAVES[2], 8, 8, proof, root), "leaf index 8 is outside a tree of size 8"),
        (lambda: verify_inclusion(LEAVES[2], -1, 8, proof, root), "leaf index -1 is outside a tree of size 8"),
        (lambda: verify_inclusion(LEAVES[2][:31], 2, 8, proof, root), "hash of 31 bytes, expected 32"),
        (lambda: verify_inclusion(LEAVES[2], 2, 8, proof, root + b"x"), "hash of 33 bytes, expected 32"),
        (lambda: verify_inclusion(LEAVES[2], 2, 8, proof[:2], root), "proof has 2 hashes, expected 3"),
        (lambda: verify_inclusion(LEAVES[2], 2, 8, [*proof, root], root), "proof has 4 hashes, expected 3"),
        (lambda: verify_inclusion(LEAVES[3], 2, 8, proof, root), "calculated root does not match the expected root"),
        (lambda: verify_consistency(3, 2, [], root, root), "invalid sizes: size1=3, size2=2"),
        (lambda: verify_consistency(-1, 2, [], root, root), "invalid sizes: size1=-1, size2=2"),
        (lambda: verify_consistency(0, 2, [], root, root), "a consistency proof from the empty tree is meaningless"),
        (lambda: verify_consistency(2, 2, [root], root, root), "sizes are equal but the proof is not empty"),
        (lambda: verify_consistency(2, 2, [], tree.root(2), root), "sizes are equal but the roots differ"),
        (
            lambda: verify_consistency(3, 8, tree.consistency_proof(3), tree.root(3)[:31], root),
            "hash of 31 bytes, expected 32",
        ),
        (
            lambda: verify_consistency(3, 8, tree.consistency_proof(3), tree.root(3), root + b"x"),
            "hash of 33 bytes, expected 32",
        ),
        (
            lambda: verify_consistency(3, 8, [*tree.consistency_proof(3)[:-1], b"x"], tree.root(3), root),
            "hash of 1 bytes, expected 32",
        ),
        (
            lambda: verify_consistency(3, 8, tree.consistency_proof(3)[:-1], tree.root(3), root),
            "proof has 3 hashes, expected 4",
        ),
        (
            lambda: verify_consistency(3, 8, tree.consistency_proof(3), tree.root(4), root),
            "proof does not reproduce root1",
        ),
        (
            lambda: verify_consistency(3, 8, tree.consistency_proof(3), tree.root(3), tree.root(7)),
            "proof does not reproduce root2",
        ),
    ]
    for call, message in cases:
        with pytest.raises(ProofError) as info:
            call()
        assert str(info.value) == message
    verify_inclusion(LEAVES[2], 2, 8, proof, root)
    verify_consistency(3, 8, tree.consistency_proof(3), tree.root(3), root)
    verify_consistency(4, 8, tree.consistency_proof(4), tree.root(4), root)
    verify_consistency(8, 8, [], root, root)
