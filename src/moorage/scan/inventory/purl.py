"""Package URLs (github.com/package-url/purl-spec) in the form Syft writes them, so that an
inventory's purls compare with Syft's SBOMs character for character."""

from __future__ import annotations

from urllib.parse import quote

# Syft keeps ':' (a dpkg epoch) and '~' readable and escapes '+', '@', '/' and the rest.
_SAFE = "-._~:"


def _enc(text: str) -> str:
    return quote(text, safe=_SAFE)


def purl(kind: str, name: str, version: str, namespace: str | None = None,
         qualifiers: dict[str, str] | None = None) -> str:
    """`pkg:kind/namespace/name@version?k=v&…`, qualifiers sorted and empty ones left out."""
    out = f"pkg:{kind}/"
    if namespace:
        out += "/".join(_enc(part) for part in namespace.split("/")) + "/"
    out += _enc(name)
    if version:
        out += "@" + _enc(version)
    pairs = sorted((k, v) for k, v in (qualifiers or {}).items() if v)
    if pairs:
        out += "?" + "&".join(f"{k}={_enc(v)}" for k, v in pairs)
    return out
