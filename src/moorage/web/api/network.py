"""CIDR rules: allowlists (instance-wide or per namespace) and trusted networks (clients
there may pull credential-free from namespaces that opt in)."""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from moorage.web.api.deps import InstanceDep, User
from moorage.web.api.errors import ERROR_RESPONSES
from moorage.web.api.models import IdPath, NetworkRule, NetworkRuleCreate

router = APIRouter(prefix="/api/v1/network-rules", tags=["network rules"],
                   responses=ERROR_RESPONSES)


@router.get("")
def list_rules(instance: InstanceDep, principal: User) -> list[NetworkRule]:
    return [NetworkRule.of(r) for r in instance.manager.list_rules(principal)]


@router.post("", status_code=status.HTTP_201_CREATED)
def create_rule(body: NetworkRuleCreate, request: Request, instance: InstanceDep,
                principal: User) -> NetworkRule:
    """An instance-wide allow rule that would shut out the caller's own address is refused
    (lock-out guard). Allowlists need the basic edition or higher."""
    address = instance.access.address(request.scope)
    return NetworkRule.of(instance.manager.create_rule(principal, body.cidr, body.kind,
                                                       body.namespace, body.description,
                                                       caller=address))


@router.delete("/{rule_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_rule(rule_id: IdPath, request: Request, instance: InstanceDep, principal: User) -> None:
    """Deleting the instance allow rule that admits the caller's own address is refused."""
    instance.manager.delete_rule(principal, rule_id, caller=instance.access.address(request.scope))
