"""Keys in cosign's formats, against cosign's own vectors (shared/fixtures/cosign/keys/:
encrypted keys that cosign wrote and the import cases of cosign's keys_test.go, password
`hello`), and a key pair we generate checked field by field against what cosign writes.

The envelopes of the fixtures are also opened here independently of the module (hashlib's
scrypt and PyNaCl's SecretBox directly), so a comparison does not trust the code under test.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nacl.secret
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from moorage.signing import keys
from tests.support.fixtures import SHARED_FIXTURES

COSIGN = SHARED_FIXTURES / "cosign"
KEYS = COSIGN / "keys"
PASSWORD = "hello"

# The fixture README's public keys of the decrypted keys (DER SubjectPublicKeyInfo, base64),
# derived there independently of this code.
EXPECTED_PUBLIC = {
    "pemcosignkey.pem": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAECYtspttZZ7e9PMd8wyU2CWDlpEXNbqT"
                        "ve0ZBuOXu9xTjtm7Z107cVLCCk96Ma4D0tesnKeCPwrcspLz7GNZJSw==",
    "pemsigstorekey.pem": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE7z9gA/tqa9iHt/f9F3ulyVi4lwqULfH"
                          "WfhG2mK4eyJ8LDcLstb+VVhxj3pkMjc3fNo+sSfiIY2NLR7c+DG1V4w==",
    "validecp256.pem": "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE+9E3Qe+h25ofmz3Uo2T004Dfy49iX06"
                       "MMbxf9rsGmLkOPrS0KYDl1QMfFuSbrtf8wTWNT9HNxrW/Foz39mDhHw==",
}

# `cosign import-key-pair` cases (TestImportPrivateKey): file -> algorithm, or the refusal
IMPORTS_OK = {
    "validrsa.pem": "rsa-2048", "validrsapkcs1.pem": "rsa-2048", "validrsapkcs8.pem": "rsa-2048",
    "validecp256.pem": "ecdsa-p256", "validecp384.pem": "ecdsa-p384",
    "validecp521.pem": "ecdsa-p521", "validecpkcs8.pem": "ecdsa-p256",
    "ed25519key.pem": "ed25519",
}
IMPORTS_REFUSED = {
    "invalidrsawithpubkey.pem": "unsupported private key: PEM 'PUBLIC KEY'",
    "invalidrsasmallkey.pem": "RSA key size 1024 is not supported",
    "invalidrsalargekey.pem": "RSA key size 5120 is not supported",
    "invalidecp224.pem": "ECDSA curve secp224r1 is not supported",
    "invalidecunsupported.pem": "ECDSA curve secp256k1 is not supported",
    "invalidkey.pem": "unsupported PEM block 'PGP PRIVATE KEY BLOCK'",
}


def _pem(data: bytes) -> tuple[str, bytes, list[bytes]]:
    """An independent PEM reading: label, bytes, body lines."""
    found = re.fullmatch(rb"-----BEGIN ([A-Z ]+)-----\n(.*?)\n-----END \1-----\n", data, re.S)
    assert found, data[:80]
    lines = found.group(2).split(b"\n")
    return found.group(1).decode(), base64.b64decode(b"".join(lines)), lines


def _open_independently(pem: bytes, password: str) -> tuple[dict, bytes]:
    """The envelope and the plaintext, by hashlib and PyNaCl alone."""
    envelope = json.loads(_pem(pem)[1])
    params = envelope["kdf"]["params"]
    box_key = hashlib.scrypt(password.encode(),
                             salt=base64.b64decode(envelope["kdf"]["salt"]),
                             n=params["N"], r=params["r"], p=params["p"], dklen=32,
                             maxmem=256 * 1024 * 1024)
    plain = nacl.secret.SecretBox(box_key).decrypt(
        base64.b64decode(envelope["ciphertext"]), base64.b64decode(envelope["cipher"]["nonce"]))
    return envelope, plain


def _read(name: str) -> bytes:
    return (KEYS / name).read_bytes()


# -- cosign's encrypted keys -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["pemcosignkey.pem", "pemsigstorekey.pem"])
def test_cosign_encrypted_keys_open_with_their_password(name: str) -> None:
    pair = keys.decrypt_private_key(_read(name), PASSWORD)
    assert pair.public.algorithm == "ecdsa-p256"
    assert base64.b64encode(pair.public.der).decode() == EXPECTED_PUBLIC[name]
    # the key that came out signs, and its public half (as the README gives it) verifies
    public = keys.load_public_key(b"-----BEGIN PUBLIC KEY-----\n%s\n-----END PUBLIC KEY-----\n"
                                  % EXPECTED_PUBLIC[name].encode())
    assert public.verify(pair.sign(b"payload"), b"payload")


@pytest.mark.parametrize("name", ["pemcosignkey.pem", "pemsigstorekey.pem",
                                  "pemcosigneckey.pem"])
def test_a_wrong_password_is_refused_clearly(name: str) -> None:
    with pytest.raises(keys.WrongPassword, match="password does not open this key") as err:
        keys.decrypt_private_key(_read(name), "Tr0ub4dor&3")
    assert "Tr0ub4dor" not in str(err.value)  # a password never reaches a message


def test_an_encrypted_sec1_key_is_refused_like_cosign_refuses_it() -> None:
    # it decrypts (N=65536), but the plaintext is SEC1, not the PKCS#8 cosign requires
    _, plain = _open_independently(_read("pemcosigneckey.pem"), PASSWORD)
    assert len(plain) == 121
    with pytest.raises(keys.KeyFormatError, match="not PKCS#8"):
        keys.decrypt_private_key(_read("pemcosigneckey.pem"), PASSWORD)


def test_read_private_key_asks_for_the_password_of_an_encrypted_key() -> None:
    with pytest.raises(keys.KeyFormatError, match="password is needed"):
        keys.read_private_key(_read("pemsigstorekey.pem"), None)
    pair = keys.read_private_key(_read("pemsigstorekey.pem"), PASSWORD.encode())
    assert base64.b64encode(pair.public.der).decode() == EXPECTED_PUBLIC["pemsigstorekey.pem"]


# -- import of plain keys ----------------------------------------------------------------------

@pytest.mark.parametrize("name,algorithm", sorted(IMPORTS_OK.items()))
def test_cosign_import_cases_that_succeed(name: str, algorithm: str) -> None:
    pair = keys.import_private_key(_read(name))
    assert pair.public.algorithm == algorithm
    # what was imported signs and verifies, and survives cosign's re-encryption (import
    # writes the key encrypted; a later load of that must give the same key)
    assert pair.public.verify(pair.sign(b"image digest"), b"image digest")
    assert not pair.public.verify(pair.sign(b"image digest"), b"another digest")
    again = keys.decrypt_private_key(keys.encrypt_private_key(pair, PASSWORD), PASSWORD)
    assert again.public.der == pair.public.der
    if name in EXPECTED_PUBLIC:
        assert base64.b64encode(pair.public.der).decode() == EXPECTED_PUBLIC[name]


@pytest.mark.parametrize("name,reason", sorted(IMPORTS_REFUSED.items()))
def test_cosign_import_cases_that_are_refused(name: str, reason: str) -> None:
    with pytest.raises(keys.KeyFormatError, match=re.escape(reason)):
        keys.import_private_key(_read(name))


def test_a_plain_key_and_its_encrypted_form_are_the_same_key() -> None:
    # pemcosigneckey is validecp256 encrypted (as SEC1); the README says so: check it
    _, plain = _open_independently(_read("pemcosigneckey.pem"), PASSWORD)
    sec1 = serialization.load_der_private_key(plain, None)
    imported = keys.import_private_key(_read("validecp256.pem"))
    assert imported.public.der == sec1.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_a_pem_label_must_match_its_contents() -> None:
    rsa_body = _pem(_read("validrsa.pem"))[1]
    relabelled = b"-----BEGIN EC PRIVATE KEY-----\n%s\n-----END EC PRIVATE KEY-----\n" % (
        base64.encodebytes(rsa_body).strip())
    with pytest.raises(keys.KeyFormatError, match="does not hold a SEC1 key"):
        keys.import_private_key(relabelled)


# -- public keys -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["cosign.pub", "cosign2.pub", "rekor.pub"])
def test_cosign_public_keys_load(name: str) -> None:
    public = keys.load_public_key((COSIGN / name).read_bytes())
    assert public.algorithm == "ecdsa-p256"
    # written back exactly as cosign wrote it
    assert public.pem == (COSIGN / name).read_bytes()
    assert public.fingerprint == "sha256:" + hashlib.sha256(public.der).hexdigest()
    assert base64.b64decode(public.key_id) == hashlib.sha256(public.der).digest()


def test_a_public_key_verifies_a_real_cosign_signature() -> None:
    # a signature cosign made (containers/image fixture): payload and signature from the
    # signature file's JSON, key cosign.pub
    raw = (COSIGN / "dir-img-cosign-valid" / "signature-1").read_bytes()
    doc = json.loads(raw.split(b"\n", 1)[1])
    payload = base64.b64decode(doc["payload"])
    signature = base64.b64decode(doc["annotations"]["dev.cosignproject.cosign/signature"])
    assert keys.load_public_key((COSIGN / "cosign.pub").read_bytes()).verify(signature, payload)
    assert not keys.load_public_key((COSIGN / "cosign2.pub").read_bytes()).verify(
        signature, payload)
    assert not keys.load_public_key((COSIGN / "cosign.pub").read_bytes()).verify(
        signature, payload + b" ")


def test_public_key_only_import_refuses_private_and_unsupported_keys() -> None:
    with pytest.raises(keys.KeyFormatError, match="expected a PEM 'PUBLIC KEY'"):
        keys.load_public_key(_read("validecp256.pem"))
    rsa_public = _read("invalidrsawithpubkey.pem")  # a valid RSA 2048 public key
    assert keys.load_public_key(rsa_public).algorithm == "rsa-2048"
    p224 = serialization.load_pem_private_key(_read("invalidecp224.pem"), None).public_key()
    with pytest.raises(keys.UnsupportedKey, match="secp224r1"):
        keys.load_public_key(p224.public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))


# -- generated keys: exactly cosign's format ---------------------------------------------------

@pytest.fixture(scope="module")
def generated() -> tuple[keys.KeyPair, bytes, bytes]:
    return keys.generate("correct horse")


def test_generated_key_round_trips_and_signs(generated) -> None:
    pair, private_pem, public_pem = generated
    opened = keys.decrypt_private_key(private_pem, "correct horse")
    assert opened.public.der == pair.public.der
    public = keys.load_public_key(public_pem)
    assert public.algorithm == "ecdsa-p256"
    signature = opened.sign(b"sha256:abc")
    assert public.verify(signature, b"sha256:abc")
    assert not public.verify(signature, b"sha256:abd")
    other = keys.KeyPair.generate()
    assert not other.public.verify(signature, b"sha256:abc")
    with pytest.raises(keys.WrongPassword):
        keys.decrypt_private_key(private_pem, "correct horsE")


def test_generated_private_key_has_cosigns_format_field_by_field(generated) -> None:
    pair, private_pem, _ = generated
    fixture_pem = _read("pemsigstorekey.pem")
    ours_label, ours_body, ours_lines = _pem(private_pem)
    theirs_label, theirs_body, theirs_lines = _pem(fixture_pem)
    # PEM: the label cosign writes today, 64-character lines, one trailing newline
    assert ours_label == theirs_label == "ENCRYPTED SIGSTORE PRIVATE KEY"
    assert {len(line) for line in ours_lines[:-1]} == {len(line) for line in theirs_lines[:-1]}
    assert {len(line) for line in ours_lines[:-1]} == {64}
    # the JSON envelope: compact, the same fields in the same order at every level
    assert b" " not in ours_body and b" " not in theirs_body
    ours, plain = _open_independently(private_pem, "correct horse")
    theirs, their_plain = _open_independently(fixture_pem, PASSWORD)

    def shape(doc: object) -> object:
        return [(k, shape(v)) for k, v in doc.items()] if isinstance(doc, dict) else type(doc)
    assert shape(ours) == shape(theirs)
    assert ours["kdf"]["name"] == theirs["kdf"]["name"] == "scrypt"
    assert ours["cipher"]["name"] == theirs["cipher"]["name"] == "nacl/secretbox"
    # scrypt: current cosign's default (go-securesystemslib "standard"); the fixture, written
    # by an older cosign, has the "legacy" set. Both are sets cosign reads.
    assert (ours["kdf"]["params"]["N"], ours["kdf"]["params"]["r"],
            ours["kdf"]["params"]["p"]) == (65536, 8, 1)
    assert (theirs["kdf"]["params"]["r"], theirs["kdf"]["params"]["p"]) == (8, 1)
    for field, path in (("salt", ("kdf", "salt")), ("nonce", ("cipher", "nonce"))):
        a, b = ours[path[0]][path[1]], theirs[path[0]][path[1]]
        assert len(base64.b64decode(a)) == len(base64.b64decode(b)), field
        assert base64.b64encode(base64.b64decode(a)).decode() == a  # standard, padded
    assert len(base64.b64decode(ours["ciphertext"])) == len(base64.b64decode(
        theirs["ciphertext"])) == 138 + 16
    # the plaintext: PKCS#8 P-256 laid out byte for byte like cosign's, but for the scalar
    # (bytes 36..67) and the public point (the last 65 bytes)
    assert len(plain) == len(their_plain) == 138
    assert plain[:36] == their_plain[:36]
    assert plain[68:-65] == their_plain[68:-65]
    assert plain == pair.pkcs8()


def test_generated_public_key_has_cosigns_format(generated) -> None:
    _, _, public_pem = generated
    ours_label, ours_der, ours_lines = _pem(public_pem)
    theirs_label, theirs_der, theirs_lines = _pem((COSIGN / "cosign.pub").read_bytes())
    assert ours_label == theirs_label == "PUBLIC KEY"
    assert [len(line) for line in ours_lines] == [len(line) for line in theirs_lines]
    assert len(ours_der) == len(theirs_der) == 91
    assert ours_der[:26] == theirs_der[:26]  # SPKI header: id-ecPublicKey, prime256v1


def test_encrypt_can_write_the_older_label_and_each_scrypt_set() -> None:
    pair = keys.KeyPair.generate()
    for params in keys.SCRYPT_SETS:
        pem = keys.encrypt_private_key(pair, "pw", label=keys.COSIGN_LABEL, scrypt_params=params)
        assert pem.startswith(b"-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n")
        assert keys.decrypt_private_key(pem, "pw").public.der == pair.public.der
    # cosign allows an empty password (COSIGN_PASSWORD=""): so do we
    empty = keys.encrypt_private_key(pair, "")
    assert keys.decrypt_private_key(empty, b"").public.der == pair.public.der
    with pytest.raises(keys.WrongPassword):
        keys.decrypt_private_key(empty, "pw")


@pytest.mark.skipif(shutil.which("cosign") is None, reason="no cosign binary on this machine")
def test_cosign_itself_reads_our_key(generated, tmp_path: Path) -> None:
    _, private_pem, public_pem = generated
    (tmp_path / "cosign.key").write_bytes(private_pem)
    out = subprocess.run(["cosign", "public-key", "--key", str(tmp_path / "cosign.key")],
                         env={**os.environ, "COSIGN_PASSWORD": "correct horse"},
                         capture_output=True, timeout=120, check=True)
    assert out.stdout == public_pem


# -- Ed25519ph (cosign's default for Ed25519 keys) ----------------------------------------------

def test_ed25519ph_matches_rfc8032() -> None:
    # RFC 8032 section 7.3, test "abc"
    seed = bytes.fromhex("833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42")
    expected = bytes.fromhex(
        "98a70222f0b8121aa9d30f813d683f809e462b469c7ff87639499bb94e6dae41"
        "31f85042463c2a355a2003d062adf5aaa10b8c61e636062aaad11c2a26083406")
    pair = keys._pair(ed25519.Ed25519PrivateKey.from_private_bytes(seed))
    assert pair.public.key.public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw).hex() == (
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf")
    assert pair.sign(b"abc") == expected
    assert pair.public.verify(expected, b"abc")
    assert not pair.public.verify(expected, b"abd")
    # pure Ed25519 signatures (older cosign) verify too
    assert pair.public.verify(pair.private.sign(b"abc"), b"abc")


# -- bad input: clear errors, bounded work -----------------------------------------------------

def _envelope_pem(envelope: object, label: str = keys.SIGSTORE_LABEL) -> bytes:
    raw = json.dumps(envelope, separators=(",", ":")).encode()
    return keys._pem(label, raw)


def _fixture_envelope() -> dict:
    return json.loads(_pem(_read("pemsigstorekey.pem"))[1])


@pytest.mark.parametrize("params", [
    {"N": 2 ** 40, "r": 8, "p": 1},        # hours and terabytes
    {"N": 32768, "r": 2 ** 20, "p": 1},    # a huge block size
    {"N": 32768, "r": 8, "p": 2 ** 30},    # parallelism cost
    {"N": 16, "r": 1, "p": 1},             # too cheap: not a set cosign writes either
    {"N": 32768.0, "r": 8, "p": 1},
    {"N": True, "r": 8, "p": 1},
    {"N": "32768", "r": 8, "p": 1},
])
def test_absurd_scrypt_parameters_are_refused_before_any_work(params: dict) -> None:
    envelope = _fixture_envelope()
    envelope["kdf"]["params"] = params
    with pytest.raises(keys.KeyFormatError, match="scrypt"):
        keys.decrypt_private_key(_envelope_pem(envelope), PASSWORD)


def _mutations() -> list[tuple[str, object, str]]:
    def edit(path: tuple, value: object) -> dict:
        env = _fixture_envelope()
        target = env
        for part in path[:-1]:
            target = target[part]
        if value is _DELETE:
            del target[path[-1]]
        else:
            target[path[-1]] = value
        return env
    return [
        ("unknown kdf", edit(("kdf", "name"), "pbkdf2"), "unknown kdf"),
        ("unknown cipher", edit(("cipher", "name"), "aes-gcm"), "unknown cipher"),
        ("no params", edit(("kdf", "params"), _DELETE), "params"),
        ("no kdf", edit(("kdf",), _DELETE), "'kdf' and 'cipher'"),
        ("short nonce", edit(("cipher", "nonce"), base64.b64encode(b"x" * 12).decode()),
         "nonce must be 24 bytes"),
        ("nonce not base64", edit(("cipher", "nonce"), "!!!"), "nonce is not valid base64"),
        ("salt not a string", edit(("kdf", "salt"), 12), "salt must be a base64 string"),
        ("empty salt", edit(("kdf", "salt"), ""), "salt must be"),
        ("huge salt", edit(("kdf", "salt"), base64.b64encode(b"s" * 5000).decode()),
         "salt must be"),
        ("empty ciphertext", edit(("ciphertext",), ""), "ciphertext is empty"),
        ("huge ciphertext", edit(("ciphertext",), base64.b64encode(b"c" * 20000).decode()),
         "too large"),
        ("array", [1, 2], "not a JSON object"),
    ]


_DELETE = object()


@pytest.mark.parametrize("case,envelope,reason", _mutations(), ids=lambda v: v
                         if isinstance(v, str) and " " in v else "")
def test_malformed_envelopes_are_refused_clearly(case: str, envelope: object,
                                                 reason: str) -> None:
    with pytest.raises(keys.KeyFormatError, match=re.escape(reason)):
        keys.decrypt_private_key(_envelope_pem(envelope), PASSWORD)


def test_an_altered_ciphertext_is_refused() -> None:
    envelope = _fixture_envelope()
    sealed = bytearray(base64.b64decode(envelope["ciphertext"]))
    sealed[40] ^= 1
    envelope["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
    with pytest.raises(keys.WrongPassword):
        keys.decrypt_private_key(_envelope_pem(envelope), PASSWORD)


@pytest.mark.parametrize("data,reason", [
    (b"", "not a PEM key"),
    (b"hello", "not a PEM key"),
    (b"\x00\xff" * 100, "not a PEM key"),
    (b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n@@@@\n"
     b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n", "not valid base64"),
    (keys._pem(keys.SIGSTORE_LABEL, b"not json"), "not JSON"),
    (keys._pem(keys.SIGSTORE_LABEL, b"\xff\xfe"), "not JSON"),
    (b"-----BEGIN PUBLIC KEY-----\n" + b"A" * 70000 + b"\n-----END PUBLIC KEY-----\n",
     "too large"),
    (b"-----BEGIN A-----\n" * 900, "not a PEM key"),  # no END: refused, in linear time
])
def test_malformed_and_oversized_input_is_refused_clearly(data: bytes, reason: str) -> None:
    for call in (lambda: keys.decrypt_private_key(data, PASSWORD),
                 lambda: keys.read_private_key(data, PASSWORD),
                 lambda: keys.load_public_key(data)):
        with pytest.raises(keys.KeyFormatError):
            call()
    with pytest.raises(keys.KeyFormatError, match=re.escape(reason)):
        keys.decrypt_private_key(data, PASSWORD)


def test_an_overlong_password_is_refused() -> None:
    with pytest.raises(keys.KeyFormatError, match="password is too long"):
        keys.decrypt_private_key(_read("pemsigstorekey.pem"), "x" * 5000)


def test_garbage_inside_a_plain_key_is_a_clear_error() -> None:
    garbage = keys._pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00")
    with pytest.raises(keys.KeyFormatError, match="does not hold a PKCS8 key"):
        keys.import_private_key(garbage)
    truncated = keys._pem("PRIVATE KEY", _pem(_read("validecpkcs8.pem"))[1][:-20])
    with pytest.raises(keys.KeyFormatError):
        keys.import_private_key(truncated)


def test_an_inconsistent_rsa_key_is_refused() -> None:
    # the right size, but a CRT coefficient altered: OpenSSL's consistency check still runs
    der = bytearray(_pem(_read("validrsa.pem"))[1])
    der[-5] ^= 0x01
    with pytest.raises(keys.KeyFormatError, match="cannot be parsed"):
        keys.import_private_key(keys._pem("RSA PRIVATE KEY", bytes(der)))
