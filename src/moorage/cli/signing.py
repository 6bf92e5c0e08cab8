"""`moorage signing key|identity …`, `moorage sign`, `moorage verify`: image signing in
cosign's formats (signing/ on the server).

Passwords are never arguments (they would show in `ps` and shell history): like cosign, they
come from COSIGN_PASSWORD or are asked for without echo (twice for a new key). A local key
(`moorage sign --key ./NAME.key`) signs on this machine: only the signed bytes, the signatures
and the public key reach the server. A private key file given to `key import` goes to the
server to be held there (sealed with its master key).
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Annotated, Any, Optional
from urllib.parse import urlsplit

import typer

from moorage.cli.client import connect, repo_path, segment
from moorage.cli.output import (CliError, JsonFlag, details, print_json, say, table, usage,
                                when)
from moorage.cli.scan import ImageArg, split_image

PASSWORD_ENV = "COSIGN_PASSWORD"  # cosign's own variable
MAX_KEY_FILE = 16 * 1024

app = typer.Typer(help="Trusted signing keys and keyless identities (image signing).",
                  no_args_is_help=True)
key_app = typer.Typer(help="Trusted keys of a namespace or of the instance.",
                      no_args_is_help=True)
identity_app = typer.Typer(help="Trusted keyless signers (certificate subject + OIDC "
                                "issuer).", no_args_is_help=True)
app.add_typer(key_app, name="key")
app.add_typer(identity_app, name="identity")

NamespaceOpt = Annotated[Optional[str], typer.Option(
    "--namespace", "-n", help="The namespace the key belongs to.")]
InstanceOpt = Annotated[bool, typer.Option(
    "--instance", help="The instance's keys, trusted by every namespace (administrators).")]


def _base(namespace: str | None, instance: bool) -> str:
    if bool(namespace) == bool(instance):
        raise usage("give --namespace NS or --instance")
    return "/signing" if instance else f"/namespaces/{segment(namespace or '')}/signing"


def _password(confirm: bool) -> str:
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return value
    return str(typer.prompt("Password for the private key", hide_input=True,
                            confirmation_prompt=confirm, default="", show_default=False))


def _read_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_FILE:
            raise usage(f"{path} is larger than a key file ({MAX_KEY_FILE} bytes at most)")
        return path.read_bytes()
    except OSError as exc:
        raise usage(f"cannot read {path}: {exc.strerror}") from None


def _show_key(d: dict[str, Any]) -> None:
    details([("Name", d["name"]), ("Scope", d["scope"]), ("Algorithm", d["algorithm"]),
             ("Fingerprint", d["fingerprint"]), ("Key id", d["key_id"]),
             ("Server-held", "yes (sealed)" if d["server_held"] else "no (public key only)"),
             ("Status", f"revoked {when(d['revoked_at'])} by {d['revoked_by']}"
              if d["revoked"] else "trusted"),
             ("Added", f"{when(d['created_at'])} by {d['created_by']}")])


@key_app.command("generate")
def generate(name: str, namespace: NamespaceOpt = None, instance: InstanceOpt = False,
             server: Annotated[bool, typer.Option(
                 "--server", help="The server makes the key pair and holds the private key "
                                  "(sealed with its master key) to sign with.")] = False,
             out: Annotated[Path, typer.Option(
                 help="Where NAME.key and NAME.pub are written (without --server).")] = Path("."),
             json_out: JsonFlag = False) -> None:
    """Make a key pair in cosign's format and trust its public key. Without --server,
    NAME.key (encrypted with a password, from COSIGN_PASSWORD or asked twice) and NAME.pub
    are written here and only the public key is sent."""
    base = _base(namespace, instance)
    if server:
        with connect() as api:
            found = api.post(f"{base}/keys", {"name": name, "generate": True})
    else:
        from moorage.signing import keys as cosign_keys

        key_file, pub_file = out / f"{name}.key", out / f"{name}.pub"
        for path in (key_file, pub_file):
            if path.exists():
                raise usage(f"{path} exists already: not overwritten")
        password = _password(confirm=True)
        try:
            _, private_pem, public_pem = cosign_keys.generate(password)
        except cosign_keys.KeyFormatError as exc:
            raise usage(str(exc)) from None
        with connect() as api:  # registered first: no files left for a key the server refused
            found = api.post(f"{base}/keys", {"name": name, "public_key": public_pem.decode()})
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private_pem)
        pub_file.write_bytes(public_pem)
    if json_out:
        print_json(found)
        return
    _show_key(found)
    if not server:
        say(f"Wrote {out / (name + '.key')} (private, encrypted) and "
            f"{out / (name + '.pub')}.")


@key_app.command("import")
def import_key(file: Path, name: Annotated[Optional[str], typer.Option(
                   help="The key's name (default: the file's name without its suffix).")] = None,
               namespace: NamespaceOpt = None, instance: InstanceOpt = False,
               public: Annotated[bool, typer.Option(
                   "--public", help="FILE is a public key alone (PEM PUBLIC KEY): trust it "
                                    "for images signed elsewhere.")] = False,
               json_out: JsonFlag = False) -> None:
    """Trust a key: a public key (--public), or a cosign private key for the server to hold
    (its password from COSIGN_PASSWORD or asked; sealed with the server's master key)."""
    base = _base(namespace, instance)
    data = _read_file(file)
    body: dict[str, Any] = {"name": name or file.name.split(".")[0]}
    if public:
        body["public_key"] = data.decode("utf-8", "replace")
    else:
        from moorage.signing import keys as cosign_keys

        body["private_key"] = data.decode("utf-8", "replace")
        if cosign_keys.is_encrypted(data):
            body["password"] = _password(confirm=False)
    with connect() as api:
        found = api.post(f"{base}/keys", body)
    if json_out:
        print_json(found)
    else:
        _show_key(found)


@key_app.command("list")
def list_keys(namespace: NamespaceOpt = None, instance: InstanceOpt = False,
              json_out: JsonFlag = False) -> None:
    """List the trusted keys of a namespace or of the instance (revoked ones too)."""
    base = _base(namespace, instance)
    with connect() as api:
        found = api.get(f"{base}/keys")
    if json_out:
        print_json(found)
        return
    table(["NAME", "ALGORITHM", "FINGERPRINT", "SERVER-HELD", "STATUS", "ADDED", "BY"],
          [(d["name"], d["algorithm"], d["fingerprint"][:23] + "…",
            "yes" if d["server_held"] else "no", "revoked" if d["revoked"] else "trusted",
            when(d["created_at"]), d["created_by"]) for d in found], empty="no keys")


@key_app.command("show")
def show_key(name: str, namespace: NamespaceOpt = None, instance: InstanceOpt = False,
             json_out: JsonFlag = False) -> None:
    """Show one key, with its public key."""
    base = _base(namespace, instance)
    with connect() as api:
        found = api.get(f"{base}/keys/{segment(name)}")
    if json_out:
        print_json(found)
        return
    _show_key(found)
    say(found["public_key"].rstrip("\n"))


@key_app.command("revoke")
def revoke_key(name: str, namespace: NamespaceOpt = None, instance: InstanceOpt = False,
               json_out: JsonFlag = False) -> None:
    """Stop trusting a key (it stays listed); signed images are verified again."""
    base = _base(namespace, instance)
    with connect() as api:
        found = api.post(f"{base}/keys/{segment(name)}/revoke", {})
    if json_out:
        print_json(found)
    else:
        say(f"Revoked key {name} of {found['scope']}.")


@key_app.command("delete")
def delete_key(name: str, namespace: NamespaceOpt = None, instance: InstanceOpt = False,
               yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
               json_out: JsonFlag = False) -> None:
    """Forget a key, and the private key the server held."""
    from moorage.cli.output import confirm

    base = _base(namespace, instance)
    confirm(f"Delete key {name}?", yes)
    with connect() as api:
        api.delete(f"{base}/keys/{segment(name)}")
    if json_out:
        print_json({"deleted": name})
    else:
        say(f"Deleted key {name}.")


@identity_app.command("add")
def add_identity(subject: Annotated[str, typer.Option(help="The certificate's subject (an "
                                                           "e-mail or a URI), exactly.")],
                 issuer: Annotated[str, typer.Option(help="The OIDC issuer, exactly.")],
                 namespace: NamespaceOpt = None, instance: InstanceOpt = False,
                 json_out: JsonFlag = False) -> None:
    """Trust a keyless signer."""
    base = _base(namespace, instance)
    with connect() as api:
        found = api.post(f"{base}/identities", {"subject": subject, "issuer": issuer})
    if json_out:
        print_json(found)
    else:
        say(f"Trusted {found['subject']} ({found['issuer']}) as identity {found['id']}.")


@identity_app.command("list")
def list_identities(namespace: NamespaceOpt = None, instance: InstanceOpt = False,
                    json_out: JsonFlag = False) -> None:
    """List the trusted keyless signers."""
    base = _base(namespace, instance)
    with connect() as api:
        found = api.get(f"{base}/identities")
    if json_out:
        print_json(found)
        return
    table(["ID", "SUBJECT", "ISSUER", "ADDED", "BY"],
          [(d["id"], d["subject"], d["issuer"], when(d["created_at"]), d["created_by"])
           for d in found], empty="no identities")


@identity_app.command("remove")
def remove_identity(identity_id: int, namespace: NamespaceOpt = None,
                    instance: InstanceOpt = False, json_out: JsonFlag = False) -> None:
    """Stop trusting a keyless signer."""
    base = _base(namespace, instance)
    with connect() as api:
        api.delete(f"{base}/identities/{identity_id}")
    if json_out:
        print_json({"removed": identity_id})
    else:
        say(f"Removed identity {identity_id}.")


# -- sign and verify --------------------------------------------------------------------------
def sign(image: ImageArg,
         key: Annotated[str, typer.Option(help="A local cosign key file (./NAME.key: signed "
                                               "here), or with --server the name of a key "
                                               "the server holds.")],
         fmt: Annotated[str, typer.Option("--format", help="cosign (legacy .sig), bundle "
                                                           "(Sigstore bundle referrer) or "
                                                           "both.")] = "both",
         server: Annotated[bool, typer.Option(
             "--server", help="Sign on the server with the key it holds under --key.")] = False,
         key_namespace: Annotated[Optional[str], typer.Option(
             help="With --server: the key's scope, a namespace or `instance` (default: the "
                  "image's namespace, then the instance).")] = None,
         json_out: JsonFlag = False) -> None:
    """Sign an image by digest (a tag is resolved to its digest first), in cosign's
    formats. The private key of a local key file never leaves this machine."""
    from moorage.signing.signer import FORMATS

    if fmt not in FORMATS:
        raise usage(f"--format must be one of {', '.join(FORMATS)}")
    name, reference = split_image(image)
    with connect() as api:
        digest = api.get(f"/repositories/{repo_path(name)}/manifests/"
                         f"{segment(reference)}")["digest"]
        body: dict[str, Any] = {"reference": digest, "format": fmt}
        if server:
            body["key"] = key
            if key_namespace:
                body["key_scope"] = key_namespace
        else:
            body.update(_sign_locally(Path(key), api.url, name, digest, fmt))
        done = api.post(f"/repositories/{repo_path(name)}/signatures", body)
    if json_out:
        print_json(done)
        return
    result = done["verification"]
    say(f"Signed {name}@{digest} ({', '.join(done['formats'])}); "
        f"{_status_line(result)}.")


def _sign_locally(path: Path, url: str, name: str, digest: str,
                  fmt: str) -> dict[str, Any]:
    from moorage.signing import keys as cosign_keys
    from moorage.signing.signer import sign_material

    if not path.is_file():
        raise usage(f"{path} is not a key file (to sign with a key the server holds, add "
                    f"--server)")
    data = _read_file(path)
    password = _password(confirm=False) if cosign_keys.is_encrypted(data) else None
    try:
        pair = cosign_keys.read_private_key(data, password)
    except cosign_keys.KeyFormatError as exc:  # never holds the password or the key
        raise CliError(f"{path}: {exc}") from None
    host = urlsplit(url).netloc
    material = sign_material(pair, f"{host}/{name}", name, digest, fmt)
    b64 = lambda raw: base64.b64encode(raw).decode() if raw else None  # noqa: E731
    return {"public_key": pair.public.pem.decode(), "payload": b64(material.payload),
            "payload_signature": b64(material.payload_signature),
            "statement": b64(material.statement),
            "statement_signature": b64(material.statement_signature)}


def _status_line(result: dict[str, Any]) -> str:
    if result["verified"]:
        return "verified by " + ", ".join(result["signers"])
    if result["signatures"]:
        return f"not verified ({result['signatures']} signatures, none from a trusted key)"
    return "unsigned"


def verify(image: ImageArg, json_out: JsonFlag = False) -> None:
    """Show an image's stored signature verification: each signature found, in which
    format, by which key, and why one is not verified. Exits 1 when not verified."""
    name, reference = split_image(image)
    with connect() as api:
        result = api.get(f"/repositories/{repo_path(name)}/manifests/{segment(reference)}"
                         "/signatures")
    if json_out:
        print_json(result)
    else:
        table(["FORMAT", "RESULT", "SIGNER", "KEY", "SIGNED", "SOURCE"],
              [(v["format"], v["reason"], v.get("signer") or "-",
                f"{v['key']} ({v['scope']})" if v.get("key") else "-",
                when(v.get("signed_at")), v["source"]) for v in result["verdicts"]],
              empty="no signatures")
        say(f"{name}@{result['digest']}: {_status_line(result)}")
    if not result["verified"]:
        raise typer.Exit(1)


def install(root: typer.Typer) -> None:
    root.add_typer(app, name="signing")
    root.command()(sign)
    root.command()(verify)
