"""Signing keys in cosign's own formats, so that a key pair made here is used by cosign as it
is, and a key made by cosign is used here as it is.

- Public keys: PEM `PUBLIC KEY` (DER SubjectPublicKeyInfo), what `cosign.pub` holds.
- Private keys, as `cosign generate-key-pair` writes them: PEM `ENCRYPTED SIGSTORE PRIVATE
  KEY` (older cosign: `ENCRYPTED COSIGN PRIVATE KEY`) whose body is a JSON envelope
  `{"kdf": {"name": "scrypt", "params": {"N", "r", "p"}, "salt"}, "cipher": {"name":
  "nacl/secretbox", "nonce"}, "ciphertext"}` (binary fields in standard base64). The box key is
  scrypt(password, salt, N, r, p, 32 bytes); the plaintext is the PKCS#8 DER private key.
- Plain private keys that `cosign import-key-pair` takes: `RSA PRIVATE KEY` (PKCS#1),
  `EC PRIVATE KEY` (SEC1) and `PRIVATE KEY` (PKCS#8 RSA, ECDSA or Ed25519).

Key types are the ones cosign accepts: ECDSA on P-256, P-384 and P-521, Ed25519, and RSA of
2048, 3072 or 4096 bits. Generation makes ECDSA P-256, cosign's default.

Bounds. An encrypted key names its own scrypt cost, so a hostile file could ask for hours
of CPU and gigabytes of memory. Like cosign (go-securesystemslib), only the three parameter
sets cosign has ever written are accepted (N = 2^15, 2^16 or 2^17 with r = 8, p = 1: at most
128 MiB and well under a second or two of one core); anything else is refused before any
work. Inputs are size-checked before they are parsed.

scrypt is deliberately slow and memory-hungry (N = 2^16 takes 64 MiB). Every function that
runs it (`decrypt_private_key`, `encrypt_private_key`, `read_private_key`) blocks: server
code calls them through `asyncio.to_thread`, never on the event loop.

Errors are `KeyFormatError` (a ValueError) with a message fit to show a user; a message never
contains a password or key material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Union

import nacl.bindings
import nacl.exceptions
import nacl.secret
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

# PEM labels
SIGSTORE_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"  # what cosign writes today
COSIGN_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"  # older cosign; still read by cosign
ENCRYPTED_LABELS = (SIGSTORE_LABEL, COSIGN_LABEL)
PUBLIC_LABEL = "PUBLIC KEY"
PLAIN_LABELS = ("RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY")

# The scrypt parameter sets cosign writes and reads (go-securesystemslib's "legacy",
# "standard" and "OWASP" levels); the default is the one current cosign writes.
SCRYPT_SETS = ((32768, 8, 1), (65536, 8, 1), (131072, 8, 1))
SCRYPT_DEFAULT = (65536, 8, 1)
SALT_BYTES = 32  # cosign's salt length
NONCE_BYTES = nacl.secret.SecretBox.NONCE_SIZE  # 24
KEY_BYTES = nacl.secret.SecretBox.KEY_SIZE  # 32

# Bounds on input. The largest key cosign accepts (RSA 4096 as PKCS#8) is ~2.4 KB of DER;
# encrypted and wrapped twice in base64 it stays under 5 KB.
MAX_PEM_BYTES = 16 * 1024
MAX_PASSWORD_BYTES = 4096
MAX_SALT_BYTES = 1024
MAX_PLAINTEXT_BYTES = 8 * 1024

RSA_SIZES = (2048, 3072, 4096)
EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
# the hash cosign (sigstore's default signer) uses with each ECDSA curve
_EC_HASH = {"secp256r1": hashes.SHA256, "secp384r1": hashes.SHA384,
            "secp521r1": hashes.SHA512}

PrivateKey = Union[ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, rsa.RSAPrivateKey]
PublicKeyObject = Union[ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, rsa.RSAPublicKey]
Password = Union[str, bytes]


class KeyFormatError(ValueError):
    """A key that cannot be read or is not accepted; the message says why."""


class WrongPassword(KeyFormatError):
    """The password does not open the key (or the ciphertext was altered: secretbox cannot
    tell the two apart)."""


class UnsupportedKey(KeyFormatError):
    """A well-formed key of a type or size cosign does not accept."""


@dataclass(frozen=True)
class PublicKey:
    """A verification key. `key_id` is what Sigstore bundles carry as the public key's
    `hint` (base64 of the SHA-256 of the DER SubjectPublicKeyInfo); `fingerprint` is the same
    hash in hex, for people and tables."""

    key: PublicKeyObject = field(repr=False)
    algorithm: str  # "ecdsa-p256", "ecdsa-p384", "ecdsa-p521", "ed25519", "rsa-2048", ...

    @property
    def der(self) -> bytes:
        return self.key.public_bytes(serialization.Encoding.DER,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def pem(self) -> bytes:
        """The key as cosign writes `cosign.pub`."""
        return self.key.public_bytes(serialization.Encoding.PEM,
                                     serialization.PublicFormat.SubjectPublicKeyInfo)

    @property
    def key_id(self) -> str:
        return base64.b64encode(hashlib.sha256(self.der).digest()).decode()

    @property
    def fingerprint(self) -> str:
        return "sha256:" + hashlib.sha256(self.der).hexdigest()

    def verify(self, signature: bytes, data: bytes) -> bool:
        """True when `signature` is this key's signature over `data`, made the way cosign
        signs: ECDSA (ASN.1 DER) with the curve's hash, RSA PKCS#1 v1.5 with SHA-256, Ed25519
        pre-hashed (Ed25519ph, cosign's default) or pure (older cosign)."""
        try:
            if isinstance(self.key, ec.EllipticCurvePublicKey):
                self.key.verify(signature, data, ec.ECDSA(_EC_HASH[self.key.curve.name]()))
            elif isinstance(self.key, rsa.RSAPublicKey):
                self.key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
            else:
                return _ed25519_verify(self.key, signature, data)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class KeyPair:
    """A private key cosign accepts and its public half."""

    private: PrivateKey = field(repr=False)
    public: PublicKey

    @classmethod
    def generate(cls) -> KeyPair:
        """A new ECDSA P-256 key pair, cosign's default."""
        return _pair(ec.generate_private_key(ec.SECP256R1()))

    def pkcs8(self) -> bytes:
        """The private key as PKCS#8 DER: the plaintext of cosign's encrypted key."""
        return self.private.private_bytes(serialization.Encoding.DER,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption())

    def sign(self, data: bytes) -> bytes:
        """A signature over `data` as cosign makes it with this key (see PublicKey.verify)."""
        key = self.private
        if isinstance(key, ec.EllipticCurvePrivateKey):
            return key.sign(data, ec.ECDSA(_EC_HASH[key.curve.name]()))
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        return _ed25519ph_sign(key, data)


# -- reading ---------------------------------------------------------------------------------

_PEM_BEGIN = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,64})-----\r?\n")
_PEM_HEADER = re.compile(rb"^[A-Za-z0-9-]+:")


def _pem_block(data: bytes) -> tuple[str, bytes]:
    """The first PEM block's label and bytes (like Go's pem.Decode, text around it is
    ignored). Header lines (`Proc-Type:`) mean an OpenSSL-encrypted key: not taken."""
    if not isinstance(data, bytes | bytearray):
        raise KeyFormatError("a key must be given as bytes")
    if len(data) > MAX_PEM_BYTES:
        raise KeyFormatError(f"the key file is too large ({len(data)} bytes; at most "
                             f"{MAX_PEM_BYTES})")
    # the first BEGIN line, then its END by plain search: linear in the input, whatever it is
    data = bytes(data)
    begin = _PEM_BEGIN.search(data)
    end = -1 if begin is None else data.find(b"-----END %s-----" % begin.group(1), begin.end())
    if begin is None or end < 0:
        raise KeyFormatError("not a PEM key (no -----BEGIN ...----- / -----END ...----- block)")
    label, body = begin.group(1).decode(), data[begin.end():end]
    known = (*ENCRYPTED_LABELS, *PLAIN_LABELS, PUBLIC_LABEL)
    if any(_PEM_HEADER.match(line.strip()) for line in body.splitlines()):
        if label not in known:
            raise UnsupportedKey(f"unsupported PEM block {label!r}: not a key cosign reads")
        raise UnsupportedKey(f"PEM {label!r} has headers (an OpenSSL-encrypted key?); give "
                             f"the key unencrypted or as cosign writes it")
    try:
        raw = base64.b64decode(b"".join(body.split()), validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"PEM {label!r}: the body is not valid base64") from None
    if not raw:
        raise KeyFormatError(f"PEM {label!r} is empty")
    return label, raw


def _der_shape(der: bytes) -> str | None:
    """Which private key structure the DER holds, read from its first two elements:
    PKCS#8 is SEQUENCE { INTEGER version, SEQUENCE algorithm, ... }; SEC1 ECPrivateKey
    SEQUENCE { INTEGER 1, OCTET STRING, ... }; PKCS#1 RSAPrivateKey SEQUENCE { INTEGER 0,
    INTEGER modulus, ... }. cosign's encrypted keys must be PKCS#8, so the shape is checked
    before the key is parsed."""
    def skip_header(pos: int) -> tuple[int, int, int] | None:  # (tag, content start, length)
        if pos + 2 > len(der):
            return None
        tag, length = der[pos], der[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or pos + count > len(der):
                return None
            length = int.from_bytes(der[pos:pos + count], "big")
            pos += count
        if pos + length > len(der):
            return None
        return tag, pos, length

    outer = skip_header(0)
    if outer is None or outer[0] != 0x30:
        return None
    first = skip_header(outer[1])
    if first is None or first[0] != 0x02:
        return None
    second = skip_header(first[1] + first[2])
    if second is None:
        return None
    return {0x30: "pkcs8", 0x04: "sec1", 0x02: "pkcs1"}.get(second[0])


def _pair(key: object) -> KeyPair:
    """Check that `key` is a private key of a type and size cosign accepts."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return KeyPair(key, _public(key.public_key()))
    if isinstance(key, rsa.RSAPrivateKey):
        return KeyPair(key, _public(key.public_key()))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return KeyPair(key, _public(key.public_key()))
    raise UnsupportedKey(f"unsupported key type {type(key).__name__.removeprefix('_')}: "
                         f"cosign accepts ECDSA (P-256, P-384, P-521), Ed25519 and RSA")


def _public(key: object) -> PublicKey:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in EC_CURVES:
            raise UnsupportedKey(f"ECDSA curve {key.curve.name} is not supported: cosign "
                                 f"accepts P-256, P-384 and P-521")
        return PublicKey(key, "ecdsa-" + EC_CURVES[key.curve.name].replace("-", "").lower())
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size not in RSA_SIZES:
            raise UnsupportedKey(f"RSA key size {key.key_size} is not supported: cosign "
                                 f"accepts 2048, 3072 and 4096 bits")
        return PublicKey(key, f"rsa-{key.key_size}")
    if isinstance(key, ed25519.Ed25519PublicKey):
        return PublicKey(key, "ed25519")
    raise UnsupportedKey("unsupported public key type: cosign accepts ECDSA (P-256, P-384, "
                         "P-521), Ed25519 and RSA")


def _load_der_private(der: bytes, what: str) -> KeyPair:
    """Parse, check type and size, and only then (for RSA) let OpenSSL validate the key: its
    consistency check costs time that grows steeply with the modulus, so an oversized key is
    refused by its size before it is checked."""
    try:
        key = serialization.load_der_private_key(der, password=None,
                                                 unsafe_skip_rsa_key_validation=True)
        pair = _pair(key)
        if isinstance(key, rsa.RSAPrivateKey):
            pair = _pair(serialization.load_der_private_key(der, password=None))
    except KeyFormatError:
        raise
    except UnsupportedAlgorithm as exc:
        raise UnsupportedKey(f"{what}: unsupported key algorithm ({exc})") from None
    except (ValueError, TypeError):
        raise KeyFormatError(f"{what}: the private key cannot be parsed") from None
    return pair


def load_public_key(data: bytes) -> PublicKey:
    """A public key from PEM `PUBLIC KEY` (a cosign.pub), for images signed elsewhere."""
    label, der = _pem_block(data)
    if label != PUBLIC_LABEL:
        raise KeyFormatError(f"expected a PEM {PUBLIC_LABEL!r}, found {label!r}")
    try:
        key = serialization.load_der_public_key(der)
    except UnsupportedAlgorithm as exc:
        raise UnsupportedKey(f"unsupported public key algorithm ({exc})") from None
    except (ValueError, TypeError):
        raise KeyFormatError("the public key cannot be parsed") from None
    return _public(key)


def import_private_key(data: bytes) -> KeyPair:
    """A plain (unencrypted) private key as `cosign import-key-pair` takes it: PEM
    `RSA PRIVATE KEY` (PKCS#1), `EC PRIVATE KEY` (SEC1) or `PRIVATE KEY` (PKCS#8)."""
    label, der = _pem_block(data)
    expected = {"RSA PRIVATE KEY": "pkcs1", "EC PRIVATE KEY": "sec1", "PRIVATE KEY": "pkcs8"}
    if label not in expected:
        if label in ENCRYPTED_LABELS:
            raise KeyFormatError(f"PEM {label!r} is encrypted: give its password")
        raise UnsupportedKey(f"unsupported private key: PEM {label!r} (expected one of "
                             f"{', '.join(repr(x) for x in PLAIN_LABELS)})")
    if _der_shape(der) != expected[label]:
        raise KeyFormatError(f"PEM {label!r} does not hold a {expected[label].upper()} key")
    pair = _load_der_private(der, f"PEM {label!r}")
    if (label == "RSA PRIVATE KEY" and not isinstance(pair.private, rsa.RSAPrivateKey)) or (
            label == "EC PRIVATE KEY" and not isinstance(pair.private, ec.EllipticCurvePrivateKey)):
        raise KeyFormatError(f"PEM {label!r} holds a key of another type")
    return pair


# -- the encrypted envelope --------------------------------------------------------------------

def _password(password: Password) -> bytes:
    raw = password.encode() if isinstance(password, str) else bytes(password)
    if len(raw) > MAX_PASSWORD_BYTES:
        raise KeyFormatError(f"the password is too long (at most {MAX_PASSWORD_BYTES} bytes)")
    return raw


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # OpenSSL needs 128·r·(N + p + 2) bytes and some; the largest accepted set needs ~128 MiB
    need = 128 * r * (n + p + 2)
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, dklen=KEY_BYTES,
                          maxmem=need + 16 * 1024 * 1024)


def _b64_field(value: object, name: str) -> bytes:
    if not isinstance(value, str):
        raise KeyFormatError(f"encrypted key: {name} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"encrypted key: {name} is not valid base64") from None


def _envelope(body: bytes) -> tuple[tuple[int, int, int], bytes, bytes, bytes]:
    """Parse and bound-check the JSON envelope: ((N, r, p), salt, nonce, ciphertext)."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise KeyFormatError("encrypted key: the PEM body is not JSON") from None
    if not isinstance(doc, dict):
        raise KeyFormatError("encrypted key: the envelope is not a JSON object")
    kdf, cipher = doc.get("kdf"), doc.get("cipher")
    if not isinstance(kdf, dict) or not isinstance(cipher, dict):
        raise KeyFormatError("encrypted key: 'kdf' and 'cipher' objects are required")
    if kdf.get("name") != "scrypt":
        raise UnsupportedKey(f"encrypted key: unknown kdf {str(kdf.get('name'))[:40]!r} "
                             f"(cosign uses 'scrypt')")
    if cipher.get("name") != "nacl/secretbox":
        raise UnsupportedKey(f"encrypted key: unknown cipher {str(cipher.get('name'))[:40]!r} "
                             f"(cosign uses 'nacl/secretbox')")
    params = kdf.get("params")
    if not isinstance(params, dict):
        raise KeyFormatError("encrypted key: kdf 'params' (N, r, p) are required")
    values = tuple(params.get(k) for k in ("N", "r", "p"))
    if not all(type(v) is int for v in values):
        raise KeyFormatError("encrypted key: scrypt N, r and p must be integers")
    if values not in SCRYPT_SETS:
        allowed = ", ".join(f"N={n} r={r} p={p}" for n, r, p in SCRYPT_SETS)
        shown = " ".join(f"{k}={str(v)[:20]}" for k, v in zip("Nrp", values))
        raise UnsupportedKey(f"encrypted key: unsupported scrypt parameters {shown} "
                             f"(accepted, as by cosign: {allowed})")
    salt = _b64_field(kdf.get("salt"), "salt")
    if not 0 < len(salt) <= MAX_SALT_BYTES:
        raise KeyFormatError(f"encrypted key: the salt must be 1 to {MAX_SALT_BYTES} bytes")
    nonce = _b64_field(cipher.get("nonce"), "nonce")
    if len(nonce) != NONCE_BYTES:
        raise KeyFormatError(f"encrypted key: the nonce must be {NONCE_BYTES} bytes, "
                             f"not {len(nonce)}")
    ciphertext = _b64_field(doc.get("ciphertext"), "ciphertext")
    if not nacl.secret.SecretBox.MACBYTES < len(ciphertext) <= MAX_PLAINTEXT_BYTES:
        raise KeyFormatError("encrypted key: the ciphertext is empty or too large")
    return values, salt, nonce, ciphertext  # type: ignore[return-value]


def is_encrypted(data: bytes) -> bool:
    """Whether `data` is a cosign encrypted private key (by its PEM label)."""
    try:
        return _pem_block(data)[0] in ENCRYPTED_LABELS
    except KeyFormatError:
        return False


def decrypt_private_key(data: bytes, password: Password) -> KeyPair:
    """Open a cosign encrypted private key, as `cosign sign --key` does. Blocking (scrypt):
    call it off the event loop."""
    label, body = _pem_block(data)
    if label not in ENCRYPTED_LABELS:
        raise KeyFormatError(f"expected a PEM {SIGSTORE_LABEL!r}, found {label!r}")
    (n, r, p), salt, nonce, ciphertext = _envelope(body)
    box_key = _scrypt(_password(password), salt, n, r, p)
    try:
        plain = nacl.secret.SecretBox(box_key).decrypt(ciphertext, nonce)
    except nacl.exceptions.CryptoError:
        raise WrongPassword("the password does not open this key (or the key file was "
                            "altered)") from None
    if _der_shape(plain) != "pkcs8":
        raise KeyFormatError("the decrypted key is not PKCS#8 (cosign refuses it too)")
    return _load_der_private(plain, "the decrypted key")


def encrypt_private_key(pair: KeyPair, password: Password, *, label: str = SIGSTORE_LABEL,
                        scrypt_params: tuple[int, int, int] = SCRYPT_DEFAULT) -> bytes:
    """The private key as cosign writes it (`cosign generate-key-pair`): PKCS#8 DER sealed in
    a secretbox under scrypt(password), in the JSON envelope, in PEM. Blocking (scrypt)."""
    if label not in ENCRYPTED_LABELS:
        raise ValueError(f"label must be one of {ENCRYPTED_LABELS}")
    if scrypt_params not in SCRYPT_SETS:
        raise ValueError(f"scrypt parameters must be one of {SCRYPT_SETS}")
    n, r, p = scrypt_params
    salt, nonce = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(NONCE_BYTES)
    sealed = nacl.secret.SecretBox(_scrypt(_password(password), salt, n, r, p)).encrypt(
        pair.pkcs8(), nonce).ciphertext
    b64 = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    # the field order and compact form of Go's encoding/json, as cosign writes it
    envelope = json.dumps({"kdf": {"name": "scrypt", "params": {"N": n, "r": r, "p": p},
                                   "salt": b64(salt)},
                           "cipher": {"name": "nacl/secretbox", "nonce": b64(nonce)},
                           "ciphertext": b64(sealed)}, separators=(",", ":")).encode()
    return _pem(label, envelope)


def _pem(label: str, raw: bytes) -> bytes:
    body = base64.b64encode(raw)
    lines = b"\n".join(body[i:i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), lines,
                                                            label.encode())


def read_private_key(data: bytes, password: Password | None) -> KeyPair:
    """Any private key a user may bring: cosign's encrypted form (with its password) or a
    plain key to import. Blocking when encrypted (scrypt)."""
    if is_encrypted(data):
        if password is None:
            raise KeyFormatError("the key is encrypted: a password is needed")
        return decrypt_private_key(data, password)
    return import_private_key(data)


def generate(password: Password) -> tuple[KeyPair, bytes, bytes]:
    """A new key pair as `cosign generate-key-pair` writes it: (pair, `cosign.key` bytes,
    `cosign.pub` bytes). Blocking (scrypt)."""
    pair = KeyPair.generate()
    return pair, encrypt_private_key(pair, password), pair.public.pem


# -- Ed25519 ---------------------------------------------------------------------------------
# cosign signs with Ed25519ph (RFC 8032 pre-hashed, SHA-512) by default; `cryptography` has
# only pure Ed25519, so the pre-hashed form goes through libsodium (PyNaCl's bindings).

def _ed25519ph_sign(key: ed25519.Ed25519PrivateKey, data: bytes) -> bytes:
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    _, secret = nacl.bindings.crypto_sign_seed_keypair(seed)
    state = nacl.bindings.crypto_sign_ed25519ph_state()
    nacl.bindings.crypto_sign_ed25519ph_update(state, data)
    return nacl.bindings.crypto_sign_ed25519ph_final_create(state, secret)


def _ed25519_verify(key: ed25519.Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if len(signature) != 64:
        return False
    state = nacl.bindings.crypto_sign_ed25519ph_state()
    nacl.bindings.crypto_sign_ed25519ph_update(state, data)
    try:
        if nacl.bindings.crypto_sign_ed25519ph_final_verify(state, signature, raw):
            return True
    except nacl.exceptions.BadSignatureError:
        pass
    try:  # pure Ed25519, as cosign signed before Ed25519ph became its default
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True
