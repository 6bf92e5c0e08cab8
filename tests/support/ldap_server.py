"""A real OpenLDAP server (Debian's `slapd`) on loopback ports, with users and groups loaded
from LDIF, stopped by PID.

The configuration is a generated slapd.conf in a temporary folder (an mdb database under the
base DN, the core, cosine, inetOrgPerson and nis schemas). Users are inetOrgPerson entries
under ou=people with plain-text `userPassword` (slapd compares them at bind); groups are
groupOfNames under ou=groups. With an authority, slapd also speaks ldaps:// on a second port
and StartTLS on the first, with a certificate for 127.0.0.1 and `cert_names`.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.certs import Authority
from tests.support.server import free_port

BASE = "dc=moorage,dc=test"
ROOT_DN = f"cn=root,{BASE}"
ROOT_PASSWORD = "root-secret-of-the-directory"
SEARCH_DN = f"cn=search,{BASE}"
SEARCH_PASSWORD = "search-account-secret-7"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


def user_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


@dataclass
class Person:
    uid: str
    password: str
    cn: str = ""
    mail: str = ""


@dataclass
class LdapServer:
    """Start with `start()`; `stop()` kills it by PID and removes its folder."""

    people: list[Person] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)  # cn -> member uids
    authority: Authority | None = None
    cert_names: tuple[str, ...] = ("localhost",)  # and always 127.0.0.1

    def __post_init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="moorage-slapd-"))
        self.port = free_port()
        self.tls_port = free_port() if self.authority is not None else None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        assert self.tls_port is not None
        return f"ldaps://127.0.0.1:{self.tls_port}"

    # -- files --------------------------------------------------------------------------
    def _conf(self) -> str:
        lines = [f"include /etc/ldap/schema/{s}.schema" for s in SCHEMAS]
        lines += [f"pidfile {self.dir / 'slapd.pid'}", f"argsfile {self.dir / 'slapd.args'}",
                  "modulepath /usr/lib/ldap", "moduleload back_mdb"]
        if self.authority is not None:
            cert, key, _ = self.authority.issue("slapd", list(self.cert_names))
            lines += [f"TLSCACertificateFile {self.authority.ca_file}",
                      f"TLSCertificateFile {cert}", f"TLSCertificateKeyFile {key}"]
        lines += ["database mdb", f"suffix \"{BASE}\"", f"rootdn \"{ROOT_DN}\"",
                  f"rootpw {ROOT_PASSWORD}", f"directory {self.dir / 'db'}",
                  "maxsize 104857600",
                  # the password is used for binds only; the rest is readable by any
                  # bound account and anonymously (the anonymous-search case)
                  "access to attrs=userPassword by anonymous auth by self write by * none",
                  "access to * by * read"]
        return "\n".join(lines) + "\n"

    def ldif(self) -> str:
        entries = [f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\n"
                   f"o: Moorage test\ndc: moorage\n",
                   f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
                   f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
                   f"dn: {SEARCH_DN}\nobjectClass: organizationalRole\n"
                   f"objectClass: simpleSecurityObject\ncn: search\n"
                   f"userPassword: {SEARCH_PASSWORD}\n"]
        for p in self.people:
            entries.append(person_ldif(p))
        for cn, members in self.groups.items():
            entries.append(group_ldif(cn, members))
        return "\n".join(entries)

    # -- life ---------------------------------------------------------------------------
    def start(self) -> "LdapServer":
        slapd = shutil.which("slapd") or "/usr/sbin/slapd"
        if not Path(slapd).exists():
            pytest.skip("slapd not found: apt-get install slapd ldap-utils")
        if not (self.dir / "slapd.conf").exists():
            (self.dir / "db").mkdir()
            (self.dir / "slapd.conf").write_text(self._conf())
            (self.dir / "data.ldif").write_text(self.ldif())
            subprocess.run([shutil.which("slapadd") or "/usr/sbin/slapadd", "-f",
                            str(self.dir / "slapd.conf"), "-l", str(self.dir / "data.ldif")],
                           check=True, capture_output=True, timeout=120)
        urls = self.url + "/" + (f" ldaps://127.0.0.1:{self.tls_port}/"
                                 if self.tls_port else "")
        self._log = open(self.dir / "slapd.log", "ab")
        # -d 0: stay in the foreground (a PID of our own to stop), logging nothing
        self.proc = subprocess.Popen([slapd, "-d", "0", "-h", urls, "-f",
                                      str(self.dir / "slapd.conf")],
                                     stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 120  # bounds a hang only
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.proc.returncode}: "
                                   f"{(self.dir / 'slapd.log').read_text(errors='replace')}")
            if all(_answers(p) for p in (self.port, self.tls_port) if p):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("slapd did not listen")

    def kill(self) -> None:
        """Stop it by PID, keeping its folder and ports: start() brings it back (an outage)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- changes while it runs (ldapmodify, as the directory's administrator) -----------
    def modify(self, ldif: str) -> None:
        self._tool("ldapmodify", ldif)

    def add(self, ldif: str) -> None:
        self._tool("ldapadd", ldif)

    def _tool(self, name: str, ldif: str) -> None:
        proc = subprocess.run([name, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD],
                              input=ldif, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr

    def remove_member(self, group: str, uid: str) -> None:
        self.modify(f"dn: {group_dn(group)}\nchangetype: modify\ndelete: member\n"
                    f"member: {user_dn(uid)}\n")

    def add_member(self, group: str, uid: str) -> None:
        self.modify(f"dn: {group_dn(group)}\nchangetype: modify\nadd: member\n"
                    f"member: {user_dn(uid)}\n")


def person_ldif(p: Person) -> str:
    text = (f"dn: {user_dn(p.uid)}\nobjectClass: inetOrgPerson\nuid: {p.uid}\n"
            f"cn: {p.cn or p.uid}\nsn: {p.uid}\nuserPassword: {p.password}\n")
    return text + (f"mail: {p.mail}\n" if p.mail else "")


def group_ldif(cn: str, members: list[str]) -> str:
    # groupOfNames needs one member at least: the search account is always one, so that a
    # test may remove the last person
    names = [user_dn(m) for m in members] + [SEARCH_DN]
    return (f"dn: {group_dn(cn)}\nobjectClass: groupOfNames\ncn: {cn}\n"
            + "".join(f"member: {n}\n" for n in names))


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False
