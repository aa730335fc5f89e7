-- The identity service (issue 17, soorma.functions.gateway.identity_service): the platform's own JWT signing keys,
-- principals and delegated issuers, as part of the gateway's one identity model (api_keys, tenants).
--
-- gateway.signing_keys is the platform's, not a tenant's: every tenant's tokens are signed by the current key, and
-- the authorizer reads a key by kid before it knows the tenant. So it has no tenant columns and no row-level
-- security; soorma_app reads it, inserts new keys and moves a key's end times (rotation), nothing else. The private
-- key is stored encrypted (AES-256-GCM, key derived from SOORMA_API_KEY_PEPPER by HKDF, the kid as associated data),
-- so a copy of the table alone signs nothing.
create table gateway.signing_keys (
  kid              text primary key check (kid ~ '^[A-Za-z0-9_-]{8,64}$'),
  alg              text not null check (alg in ('ES256')),
  public_jwk       jsonb not null,
  private_key_enc  bytea not null,
  created_at       timestamptz not null default now(),  -- published in the JWKS from here
  signs_from       timestamptz not null,                -- the key signs in [signs_from, signs_until)
  signs_until      timestamptz not null,
  published_until  timestamptz not null,                -- in the JWKS until the last token it signed expired
  check (signs_from < signs_until and signs_until <= published_until)
);
create index signing_keys_signing on gateway.signing_keys (signs_from desc);
revoke all on gateway.signing_keys from soorma_app;
grant select, insert on gateway.signing_keys to soorma_app;
grant update (signs_until, published_until) on gateway.signing_keys to soorma_app;

-- Principals of the identity service (soorma-core's PrincipalRequest): who a token or an API key names. A principal
-- has one role for life (as in gateway.api_keys); revoking it revokes its API keys and refuses its tokens.
create table gateway.principals (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  principal_id       text not null check (principal_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  role               text not null check (role in ('admin', 'developer', 'agent', 'user')),
  principal_type     text not null check (length(principal_type) between 1 and 32),
  lifecycle_state    text not null default 'active' check (lifecycle_state in ('active', 'suspended', 'revoked')),
  external_ref       text check (length(external_ref) <= 500),
  created_by         text,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  primary key (platform_tenant_id, principal_id)
);
alter table gateway.principals enable row level security;
alter table gateway.principals force row level security;
create policy principals_platform_tenant on gateway.principals to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());
do $$
begin
  execute format('create policy principals_owner_all on gateway.principals to %I using (true) with check (true)',
                 current_user);
end
$$;
revoke all on gateway.principals from soorma_app;
grant select, insert, update on gateway.principals to soorma_app;

-- Whether a principal may still hold tokens: read by the authorizer before it knows the tenant (SECURITY DEFINER,
-- like gateway.tenant_status). 'active' for a principal that has API keys only (no row here).
create function gateway.principal_status(p_platform_tenant_id text, p_principal_id text) returns text
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select case
             when coalesce((select status from gateway.tenants where platform_tenant_id = p_platform_tenant_id),
                           'unknown') <> 'active' then 'tenant-inactive'
             else coalesce((select lifecycle_state from gateway.principals
                             where platform_tenant_id = p_platform_tenant_id and principal_id = p_principal_id),
                           'active')
           end
$$;
revoke all on function gateway.principal_status(text, text) from public;
grant execute on function gateway.principal_status(text, text) to soorma_app;

-- Delegated issuers (soorma-core's DelegatedIssuerRequest): another issuer whose tokens a tenant trusts, with its
-- JWKS, accepted audiences and the claim mapping onto the tenant's principals (POST /v1/identity/mappings/evaluate).
create table gateway.delegated_issuers (
  platform_tenant_id   text not null,
  service_tenant_id    text not null,
  service_user_id      text not null,
  delegated_issuer_id  text not null check (delegated_issuer_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  issuer               text not null check (length(issuer) between 1 and 500),
  jwks                 jsonb not null,
  audiences            text[] not null default '{}',
  claim_mapping        jsonb not null default '{}'::jsonb,
  status               text not null default 'active' check (status in ('active', 'disabled')),
  created_by           text,
  created_at           timestamptz not null default now(),
  updated_at           timestamptz not null default now(),
  primary key (platform_tenant_id, delegated_issuer_id),
  unique (platform_tenant_id, issuer)
);
alter table gateway.delegated_issuers enable row level security;
alter table gateway.delegated_issuers force row level security;
create policy delegated_issuers_platform_tenant on gateway.delegated_issuers to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());
do $$
begin
  execute format('create policy delegated_issuers_owner_all on gateway.delegated_issuers to %I using (true) '
                 'with check (true)', current_user);
end
$$;
revoke all on gateway.delegated_issuers from soorma_app;
grant select, insert, update on gateway.delegated_issuers to soorma_app;
