-- Registry: payload schemas (soorma-core's /v1/schemas). A schema version is immutable: (platform tenant, name,
-- version) is written once, a second registration is a 409. Scoped by platform tenant like the other registry
-- tables (RLS enabled and forced); soorma_app may insert and read, never update or delete.

create table registry.payload_schemas (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  schema_name        text not null check (length(schema_name) between 1 and 255),
  version            text not null check (length(version) between 1 and 64),
  json_schema        jsonb not null,
  description        text not null default '',
  owner_agent_id     text,
  created_at         timestamptz not null default clock_timestamp(),
  updated_at         timestamptz not null default clock_timestamp(),
  primary key (platform_tenant_id, schema_name, version)
);
-- "latest by created_at" per name, and the owner filter of the list
create index payload_schemas_latest on registry.payload_schemas (platform_tenant_id, schema_name, created_at desc);
create index payload_schemas_owner on registry.payload_schemas (platform_tenant_id, owner_agent_id);

alter table registry.payload_schemas enable row level security;
alter table registry.payload_schemas force row level security;
create policy payload_schemas_platform_tenant on registry.payload_schemas to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());

revoke all on registry.payload_schemas from soorma_app;
grant select, insert on registry.payload_schemas to soorma_app;
