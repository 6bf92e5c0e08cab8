"""Custom domain names: hostnames served with a certificate of their own, chosen by SNI
(administrators; basic edition and up). The private key goes in, never out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from moorage.domains import DomainService
from moorage.domains.certs import MAX_PEM_BYTES
from moorage.domains.store import DomainRow
from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import RequestBody, when
from moorage.web.api.parts import ApiParts

router = APIRouter(prefix="/api/v1/domains", tags=["domains"], responses=ERROR_RESPONSES)
HostPath = Annotated[str, Path(max_length=253, description="the host name, e.g. "
                                                           "registry.example.com")]


class Domain(BaseModel):
    host: str
    subject: str = Field(description="the certificate's subject common name")
    names: list[str] = Field(description="the DNS names the certificate covers (SANs)")
    not_before: datetime
    not_after: datetime = Field(description="when the certificate expires")
    certificate: str = Field(description="the PEM certificate chain served for this host")
    created_at: datetime
    updated_at: datetime = Field(description="when the pair was added or last renewed")
    updated_by: str

    @classmethod
    def of(cls, row: DomainRow) -> Domain:
        return cls(host=row.host, subject=row.subject, names=list(row.names),
                   not_before=when(row.not_before), not_after=when(row.not_after),
                   certificate=row.cert_pem, created_at=when(row.created_at),
                   updated_at=when(row.updated_at), updated_by=row.updated_by)


class DomainCreate(RequestBody):
    host: str = Field(max_length=253, examples=["registry.example.com"])
    certificate: str = Field(max_length=MAX_PEM_BYTES, description="PEM certificate chain, "
                             "the server's certificate first; it must name the host")
    key: str = Field(max_length=MAX_PEM_BYTES, description="the unencrypted PEM private key "
                     "of the certificate; stored sealed with the master key when encryption "
                     "at rest is on, and never returned")


def _service(instance: ApiParts) -> DomainService:
    if instance.domains is None:  # never in a normal build; kept for partial assemblies
        raise HTTPException(404, "custom domains are not installed on this instance")
    return instance.domains


@router.get("")
def list_domains(instance: InstanceDep, principal: User) -> list[Domain]:
    """The custom domains every replica serves (administrators)."""
    return [Domain.of(r) for r in _service(instance).list(principal)]


@router.post("", status_code=status.HTTP_201_CREATED,
             responses={200: {"description": "the domain existed: its pair was replaced"}})
def add_domain(body: DomainCreate, response: Response, instance: InstanceDep,
               principal: User) -> Domain:
    """Add a domain, or renew the pair of one that exists (200). The pair is refused with
    the reason when the key does not belong to the certificate, the certificate has expired
    or is not yet valid, or does not name the host. Every replica serves it within seconds,
    without a restart."""
    row, created = _service(instance).add(principal, body.host, body.certificate, body.key)
    if not created:
        response.status_code = status.HTTP_200_OK
    return Domain.of(row)


@router.delete("/{host}", status_code=status.HTTP_204_NO_CONTENT)
def remove_domain(host: HostPath, instance: InstanceDep, principal: User) -> None:
    """Stop serving a domain; its clients then get the default certificate."""
    _service(instance).remove(principal, host)
