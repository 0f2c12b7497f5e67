"""Protection of personal data at rest: AES-256-GCM encryption, keyed hashes, masking.

One master key (32 bytes, base64) comes from ZHIZHI_DATA_KEY or the file named by
ZHIZHI_DATA_KEY_FILE. Two sub-keys are derived from it with HKDF, one to encrypt and one
to hash, so the lookup hash never reveals the encryption key. Ciphertexts carry a version
prefix ("v1:") so the key can be rotated later without guessing formats.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from functools import lru_cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_PREFIX = "v1:"


def generate_key_file(path: str | Path) -> bool:
    """Write a fresh random key to `path` with mode 0600. Returns False if it already exists."""
    path = Path(path)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    return True


def _master_key() -> bytes:
    raw = settings.ZHIZHI_DATA_KEY
    if not raw:
        path = Path(settings.ZHIZHI_DATA_KEY_FILE)
        if not path.exists():
            raise ImproperlyConfigured(
                f"No data key: set ZHIZHI_DATA_KEY or create {path} (python manage.py ensure_data_key)."
            )
        raw = path.read_text().strip()
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError as exc:
        raise ImproperlyConfigured("The data key is not valid base64.") from exc
    if len(key) != 32:
        raise ImproperlyConfigured(f"The data key must be 32 bytes, got {len(key)}.")
    return key


@lru_cache(maxsize=1)
def _keys() -> tuple[AESGCM, bytes]:
    master = _master_key()

    def derive(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    return AESGCM(derive(b"zhizhi-encrypt")), derive(b"zhizhi-lookup-hash")


def reset_keys() -> None:
    """Forget the cached keys (tests that change the key)."""
    _keys.cache_clear()


def encrypt(plaintext: str) -> str:
    if not plaintext:
        return ""
    aes, _ = _keys()
    nonce = os.urandom(12)
    return _PREFIX + base64.b64encode(nonce + aes.encrypt(nonce, plaintext.encode(), None)).decode()


def decrypt(token: str) -> str:
    if not token:
        return ""
    if not token.startswith(_PREFIX):
        raise ValueError("unknown ciphertext format")
    aes, _ = _keys()
    blob = base64.b64decode(token[len(_PREFIX) :])
    return aes.decrypt(blob[:12], blob[12:], None).decode()


def lookup_hash(value: str) -> str:
    """Keyed hash for exact-match lookup; the value must already be normalised."""
    if not value:
        return ""
    _, hkey = _keys()
    return hmac.new(hkey, value.encode(), hashlib.sha256).hexdigest()


def normalize_id_number(value: str) -> str:
    return value.strip().replace(" ", "").upper()


def normalize_phone(value: str) -> str:
    digits = "".join(ch for ch in value if ch.isdigit() or ch == "+")
    if digits.startswith("+86"):
        digits = digits[3:]
    elif digits.startswith("0086"):
        digits = digits[4:]
    return digits


def mask_id_number(value: str) -> str:
    """330105********123X: region prefix and last four visible."""
    if len(value) < 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_phone(value: str) -> str:
    """138****5678 for mobiles; landlines keep area code and last four."""
    if len(value) < 7:
        return "*" * len(value)
    return value[:3] + "*" * (len(value) - 7) + value[-4:]
