"""C2SP signed notes, checkpoints and cosignatures (hub/audit/checkpoint.py), pure values."""

from __future__ import annotations

import base64
import hashlib
import struct

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from hub.audit.checkpoint import (
    COSIGNATURE_V1,
    ED25519,
    Checkpoint,
    CheckpointError,
    NoteSignature,
    Verifier,
    cosigned_message,
    key_id,
)

# The example key and note of the Go reference implementation (golang.org/x/mod/sumdb/note).
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # PRIVATE+KEY+PeterNeumann+c74f20a3+<this>
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_key_ids_and_signature_lines_match_the_reference_note_byte_for_byte() -> None:
    v = Verifier.from_text(GO_VKEY)
    assert (v.name, v.alg, v.id.hex()) == ("PeterNeumann", ED25519, "c74f20a3")
    assert v.id == hashlib.sha256(b"PeterNeumann\n\x01" + v.public_key).digest()[:4]
    assert v.to_text() == GO_VKEY
    key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(GO_SKEY_SEED)[1:])
    line = NoteSignature("PeterNeumann", v.id, key.sign(GO_TEXT.encode())).to_text()
    assert line == GO_SIG  # Ed25519 is deterministic: the same key and text give the published signature
    parsed = NoteSignature.from_line(GO_SIG.rstrip("\n"))
    v.key().verify(parsed.signature, GO_TEXT.encode())


def test_bad_verifier_keys_are_refused() -> None:
    with pytest.raises(CheckpointError, match="wrong key id"):
        Verifier.from_text(GO_VKEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(CheckpointError, match="form"):
        Verifier.from_text("PeterNeumann+c74f20a3")


ROOT = bytes(range(32))


def test_checkpoint_text_round_trip_signature_and_cosignature() -> None:
    log_key, witness_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    cp = Checkpoint("hub.test/audit", 20852163, ROOT).sign("hub.test/audit", log_key)
    text = cp.to_text()
    body = f"hub.test/audit\n20852163\n{base64.b64encode(ROOT).decode()}\n"
    assert text.startswith(body + "\n\u2014 hub.test/audit ")
    assert Checkpoint.from_text(text) == cp
    log_v = Verifier.of("hub.test/audit", ED25519, log_key.public_key())
    cp.verify(log_v)
    cosig = cp.cosign("witness.test/w1", witness_key, 1679315147)
    assert cosig.key_id == key_id(
        "witness.test/w1", COSIGNATURE_V1, Verifier.of("w", 4, witness_key.public_key()).public_key
    )
    assert cosig.signature[:8] == struct.pack(">Q", 1679315147)
    witness_key.public_key().verify(cosig.signature[8:], cosigned_message(body, 1679315147))
    assert cosigned_message(body, 1679315147).startswith(b"cosignature/v1\ntime 1679315147\nhub.test/audit\n")
    witnessed = Checkpoint.from_text(cp.with_signatures([cosig]).to_text())
    w_v = Verifier.of("witness.test/w1", COSIGNATURE_V1, witness_key.public_key())
    assert witnessed.verify_cosignature(w_v) == 1679315147
    witnessed.verify(log_v)
    # the wrong key, a changed size or root, and a log key used as a witness key are refused
    with pytest.raises(CheckpointError):
        cp.verify(Verifier.of("hub.test/audit", ED25519, witness_key.public_key()))
    forged = Checkpoint.from_text(text.replace("\n20852163\n", "\n20852162\n"))
    with pytest.raises(CheckpointError, match="no valid signature by hub.test/audit"):
        forged.verify(log_v)
    with pytest.raises(CheckpointError, match="no valid cosignature"):
        cp.verify_cosignature(w_v)
    with pytest.raises(CheckpointError, match="not a witness"):
        witnessed.verify_cosignature(log_v)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("hub.test/audit\n20\nAAAA\n\n\u2014 a AAAAAAAA\n", "not 32 bytes"),
        ("hub.test/audit\n020\n" + base64.b64encode(ROOT).decode() + "\n\n\u2014 a AAAAAAAA\n", "leading zeros"),
        ("hub.test/audit\n20\n" + base64.b64encode(ROOT).decode() + "\n\n", "no signature"),
        ("hub.test/audit\n20\n" + base64.b64encode(ROOT).decode() + "\n", "blank line"),
        ("hub.test/audit\n20\n" + base64.b64encode(ROOT).decode() + "\n\n- a AAAAAAAA\n", "malformed signature"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, problem: str) -> None:
    with pytest.raises(CheckpointError, match=problem):
        Checkpoint.from_text(text)
