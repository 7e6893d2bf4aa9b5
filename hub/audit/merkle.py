"""RFC 6962 / RFC 9162 Merkle trees: tree hashes, proofs and proof verification.

Implements RFC 9162 §2.1 (unchanged from RFC 6962 §2.1) with SHA-256:

* the Merkle Tree Hash MTH(D[n]) (§2.1.1), with 0x00 / 0x01 domain separation for leaves / nodes;
* inclusion proofs PATH(m, D[n]) (§2.1.3.1) and their verification (§2.1.3.2);
* consistency proofs PROOF(m, D[n]) (§2.1.4.1) and their verification (§2.1.4.2).

Everything operates on *leaf hashes* (``leaf_hash(entry)``), never on raw entries. The module is pure
and uses only the standard library. Verifiers are strict: they raise :class:`ProofError` for any
malformed input (wrong hash length, index out of range, proof too long or too short, ...), not only
for a hash mismatch.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterable, Sequence

__all__ = [
    "EMPTY_ROOT",
    "CompactRange",
    "HASH_SIZE",
    "MerkleTree",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_from_leaf_hashes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
EMPTY_ROOT: bytes = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256() — the root of the empty tree."""

_sha256 = hashlib.sha256
# a context already fed the node prefix, copied per node: cheaper than a new context (OpenSSL 3) for 65 bytes
_node_ctx = hashlib.sha256(b"\x01").copy
# (start, end) -> MTH(D[start:end]); only called for the aligned ranges that proofs need.
_SubtreeHash = Callable[[int, int], bytes]


class ProofError(ValueError):
    """A Merkle proof, or the parameters given to verify it, is invalid."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): the hash of one log entry."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): the hash of an interior node."""
    return _sha256(b"\x01" + left + right).digest()


def _check_leaf_hashes(hashes: Iterable[bytes]) -> None:
    # bytes only: a 32-character str has the right length but would corrupt the cached levels later
    if any(not isinstance(h, bytes) or len(h) != HASH_SIZE for h in hashes):
        raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")


def _parents(row: list[bytes], start: int) -> list[bytes]:
    """Hashes of the pairs (row[2i], row[2i + 1]) for i >= start."""
    sha = _sha256
    return [sha(b"\x01" + row[i] + row[i + 1]).digest() for i in range(2 * start, len(row) - 1, 2)]


def _mth(leaves: Sequence[bytes]) -> bytes:
    # Pairing neighbours level by level and promoting a lone last node unchanged gives exactly the
    # RFC's split at the largest power of two below n, in n - 1 hashes and without recursion.
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        upper = _parents(level, 0)
        if len(level) % 2:
            upper.append(level[-1])
        level = upper
    return level[0]


def root_from_leaf_hashes(leaves: Sequence[bytes]) -> bytes:
    """MTH(D[n]) over already-hashed leaves (RFC 9162 §2.1.1), iteratively in O(n)."""
    _check_leaf_hashes(leaves)
    return _mth(leaves)


def _split(width: int) -> int:
    """The largest power of two strictly smaller than ``width`` (``width >= 2``)."""
    return 1 << ((width - 1).bit_length() - 1)


def _path(subtree: _SubtreeHash, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1), unrolled from the root down and then reversed."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    proof: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo += k
    proof.reverse()
    return proof


def _consistency(subtree: _SubtreeHash, old: int, size: int) -> list[bytes]:
    """PROOF(old, D[size]) = SUBPROOF(old, D[size], true) (RFC 9162 §2.1.4.1), unrolled."""
    if not 0 < old <= size:
        raise ValueError(f"old size {old} must be in 1..{size}")
    proof: list[bytes] = []
    lo, hi, whole = 0, size, True
    while old != hi:
        k = _split(hi - lo)
        if old <= lo + k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo += k
            whole = False
    if not whole:
        proof.append(subtree(lo, hi))
    proof.reverse()
    return proof


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path PATH(index, D[n]) for the leaf at ``index`` among the leaf hashes ``leaves``."""
    _check_leaf_hashes(leaves)
    return _path(lambda lo, hi: _mth(leaves[lo:hi]), index, len(leaves))


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """PROOF(old_size, D[n]) between the first ``old_size`` leaves and all of ``leaves``.

    ``old_size`` must be in 1..n; ``old_size == n`` gives ``[]``.
    """
    _check_leaf_hashes(leaves)
    return _consistency(lambda lo, hi: _mth(leaves[lo:hi]), old_size, len(leaves))


def _check_proof_hashes(proof: Sequence[bytes], *hashes: bytes) -> None:
    for h in (*hashes, *proof):
        if len(h) != HASH_SIZE:
            raise ProofError(f"hash of {len(h)} bytes, expected {HASH_SIZE}")


def _check_length(proof: Sequence[bytes], expected: int) -> None:
    if len(proof) != expected:
        raise ProofError(f"proof has {len(proof)} hashes, expected {expected}")


def verify_inclusion(leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``size`` leaves with ``root``.

    RFC 9162 §2.1.3.2. Raises :class:`ProofError` on any failure.
    """
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_proof_hashes(proof, leaf_hash, root)
    fn, sn = index, size - 1
    inner = (fn ^ sn).bit_length()
    _check_length(proof, inner + (fn >> inner).bit_count())
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is too short")
    if not hmac.compare_digest(r, root):
        raise ProofError("calculated root does not match the expected root")


def verify_consistency(size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes) -> None:
    """Check that the tree of ``size2`` leaves with ``root2`` extends the one of ``size1`` with ``root1``.

    RFC 9162 §2.1.4.2. ``size1`` must be in 1..size2 (a proof from the empty tree is meaningless);
    equal sizes need an empty proof and equal roots. Raises :class:`ProofError` on any failure.
    """
    if size1 < 0 or size2 < size1:
        raise ProofError(f"invalid sizes: size1={size1}, size2={size2}")
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if size1 == size2:
        if proof:
            raise ProofError("sizes are equal but the proof is not empty")
        if not hmac.compare_digest(root1, root2):
            raise ProofError("sizes are equal but the roots differ")
        return
    _check_proof_hashes(proof, root1, root2)
    # Step 4: drop the levels where the old tree is a complete left subtree.
    level = (size1 & -size1).bit_length() - 1
    fn, sn = (size1 - 1) >> level, (size2 - 1) >> level
    inner = (fn ^ sn).bit_length()
    power_of_two = size1 == 1 << level
    _check_length(proof, inner + (fn >> inner).bit_count() + (0 if power_of_two else 1))
    path = [root1, *proof] if power_of_two else list(proof)
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("proof is too short")
    if not hmac.compare_digest(fr, root1):
        raise ProofError("proof does not reproduce root1")
    if not hmac.compare_digest(sr, root2):
        raise ProofError("proof does not reproduce root2")


class MerkleTree:
    """An append-only list of leaf hashes with cached hashes of every complete power-of-two subtree.

    ``_levels[k][i]`` is MTH of leaves ``[i * 2**k, (i + 1) * 2**k)``. Roots and proofs for any prefix
    of the log then cost O(log² n) hashes instead of O(n).
    """

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        self.extend(leaf_hashes)

    @property
    def size(self) -> int:
        """The number of leaves."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash; hashes every subtree it completes (amortised O(1))."""
        _check_leaf_hashes((leaf_hash,))
        levels = self._levels
        levels[0].append(leaf_hash)
        k, n = 0, len(levels[0])
        while n % 2 == 0:
            if len(levels) == k + 1:
                levels.append([])
            levels[k + 1].append(node_hash(levels[k][-2], levels[k][-1]))
            k, n = k + 1, n // 2

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Add many leaf hashes at once, level by level (faster than repeated :meth:`append`)."""
        new = list(leaf_hashes)
        _check_leaf_hashes(new)
        levels = self._levels
        levels[0].extend(new)
        k = 0
        while len(levels[k]) >= 2:
            if len(levels) == k + 1:
                levels.append([])
            levels[k + 1].extend(_parents(levels[k], len(levels[k + 1])))
            k += 1

    def leaf(self, index: int) -> bytes:
        """The leaf hash at ``index``."""
        if not 0 <= index < self.size:
            raise ValueError(f"leaf index {index} is outside a tree of size {self.size}")
        return self._levels[0][index]

    def _size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"size {size} is outside 0..{self.size}")
        return size

    def _subtree(self, lo: int, hi: int) -> bytes:
        # MTH(D[lo:hi]) for 0 <= lo < hi with lo a multiple of a power of two >= hi - lo, which holds
        # for every range in PATH and PROOF: fold the complete subtrees covering it, right to left.
        parts: list[bytes] = []
        width = hi - lo
        for k in range(width.bit_length() - 1, -1, -1):
            if width >> k & 1:
                parts.append(self._levels[k][lo >> k])
                lo += 1 << k
        h = parts.pop()
        while parts:
            h = node_hash(parts.pop(), h)
        return h

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        n = self._size(size)
        return self._subtree(0, n) if n else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[size]) in the tree of the first ``size`` leaves (default: all)."""
        return _path(self._subtree, index, self._size(size))

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """PROOF(old, D[new]) between the first ``old`` and the first ``new`` leaves (default: all)."""
        return _consistency(self._subtree, old, self._size(new))


_NONE_FOLDED: tuple[bytes, ...] = ()


def fold_in(stack: list[bytes], size: int, leaf_hash: bytes) -> Sequence[bytes]:
    """Append a leaf hash to ``stack``, the right edge of a tree of ``size`` leaves (a compact range: one subtree
    root per 1 bit of ``size``). Every trailing 1 bit of the old size is a complete subtree the new leaf pairs with;
    returns those left siblings, in the order they were folded in (the verifier keeps them to rebuild the range
    without the newest leaf when a failure needs it)."""
    if not size & 1:
        stack.append(leaf_hash)
        return _NONE_FOLDED
    folded = []
    h = leaf_hash
    while size & 1:
        left = stack.pop()
        folded.append(left)
        ctx = _node_ctx()
        ctx.update(left + h)
        h = ctx.digest()
        size >>= 1
    stack.append(h)
    return folded


class CompactRange:
    """The right edge of a growing tree: the roots of its complete power-of-two subtrees, largest first.

    Appending a leaf costs amortised O(1) hashes and the whole state is at most log2(n) + 1 hashes, so the root
    of every prefix of a log can be recomputed while the log is *streamed*, in O(log n) memory (what
    ``hub audit verify`` needs). The subtrees are those of the binary representation of ``size``: for
    size = 2^a + 2^b + ... (a > b > ...) the stack holds MTH of leaves [0, 2^a), [2^a, 2^a + 2^b), ...
    Folding them right to left gives MTH(D[size]) (RFC 9162 §2.1.1), as in :meth:`MerkleTree.root`.
    """

    __slots__ = ("_stack", "size")

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._stack: list[bytes] = []
        self.size = 0
        for h in leaf_hashes:
            self.append(h)

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash (32 bytes; not re-checked on this hot path beyond its length)."""
        if len(leaf_hash) != HASH_SIZE or not isinstance(leaf_hash, bytes):
            raise ValueError(f"every leaf hash must be {HASH_SIZE} bytes")
        fold_in(self._stack, self.size, leaf_hash)
        self.size += 1

    def copy(self) -> CompactRange:
        other = CompactRange()
        other._stack = self._stack[:]
        other.size = self.size
        return other

    def root(self) -> bytes:
        """MTH of all leaves appended so far (``EMPTY_ROOT`` when none)."""
        stack = self._stack
        if not stack:
            return EMPTY_ROOT
        h = stack[-1]
        for left in reversed(stack[:-1]):
            h = _sha256(b"\x01" + left + h).digest()
        return h
