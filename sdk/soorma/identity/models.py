"""The identity service's request and response shapes (soorma-core's identity DTOs, reference §2.5): fields in
snake_case, JSON in camelCase (soorma-core's ``BaseDTO``: either casing is accepted on input, ``model_dump(by_alias=
True)`` gives camelCase). Unknown fields are kept, so an answer with this platform's extra fields still validates.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel


class IdentityDTO(BaseModel):
    """Base of the identity DTOs: camelCase aliases, populate by field name too, extra fields kept."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")


class TokenIssuanceType(str, enum.Enum):
    """soorma-core's issuance types: a token of the platform, or one issued on a delegated issuer's behalf."""

    PLATFORM = "platform"
    DELEGATED = "delegated"


class PrincipalType(str, enum.Enum):
    """soorma-core's principal types; the platform role each holds: ``admin``, ``developer``, ``user``, and
    ``agent`` for ``service``/``agent``/``planner``/``worker``/``tool``."""

    ADMIN = "admin"
    SERVICE = "service"
    AGENT = "agent"
    USER = "user"
    DEVELOPER = "developer"
    PLANNER = "planner"
    WORKER = "worker"
    TOOL = "tool"


class OnboardingRequest(IdentityDTO):
    bootstrap_admin_external_ref: str | None = None
    platform_tenant_id: str | None = None
    tenant_name: str | None = None


class OnboardingResponse(IdentityDTO):
    tenant_domain_id: str
    platform_tenant_id: str
    bootstrap_admin_principal_id: str
    tenant_admin_api_key: str
    status: str = "active"


class TenantAdminCredentialRotateResponse(IdentityDTO):
    credential_id: str
    tenant_admin_api_key: str
    status: str = "active"


class PrincipalRequest(IdentityDTO):
    tenant_domain_id: str | None = None
    principal_type: PrincipalType | str = PrincipalType.USER
    lifecycle_state: str = "active"
    external_ref: str | None = None
    principal_id: str | None = None


class PrincipalResponse(IdentityDTO):
    principal_id: str
    tenant_domain_id: str
    lifecycle_state: str
    principal_type: str | None = None
    role: str | None = None


class TokenIssueRequest(IdentityDTO):
    principal_id: str
    issuance_type: TokenIssuanceType = TokenIssuanceType.PLATFORM
    delegated_issuer_id: str | None = None
    tenant_domain_id: str | None = None


class TokenIssueResponse(IdentityDTO):
    token: str
    token_type: str = "Bearer"
    expires_in: int | None = None
    expires_at: str | None = None


class DelegatedIssuerRequest(IdentityDTO):
    tenant_domain_id: str | None = None
    issuer_id: str
    jwk_set_ref_or_material: dict[str, Any] | str = {"keys": []}
    audience_policy_ref: list[str] | str | None = None
    claim_mapping_policy_ref: dict[str, Any] | str | None = None
    delegated_issuer_id: str | None = None
    status: str = "active"


class DelegatedIssuerResponse(IdentityDTO):
    delegated_issuer_id: str
    tenant_domain_id: str
    issuer_id: str
    status: str


class MappingEvaluationRequest(IdentityDTO):
    delegated_issuer_id: str | None = None
    issuer_id: str | None = None
    token: str | None = None
    claims: dict[str, Any] | None = None


class MappingEvaluationResponse(IdentityDTO):
    decision: str
    reason_code: str
    principal_id: str | None = None
    role: str | None = None


__all__ = [
    "DelegatedIssuerRequest", "DelegatedIssuerResponse", "IdentityDTO", "MappingEvaluationRequest",
    "MappingEvaluationResponse", "OnboardingRequest", "OnboardingResponse", "PrincipalRequest", "PrincipalResponse",
    "PrincipalType", "TenantAdminCredentialRotateResponse", "TokenIssuanceType", "TokenIssueRequest",
    "TokenIssueResponse",
]
