-- Idempotency records (soorma.functions.memory, /v1/memory/idempotency/{key}): the persistence layer behind
-- Powertools' idempotency utility for agent functions (soorma.idempotency.PlatformPersistenceLayer;
-- https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/). One row per idempotency key
-- ("<prefix>#<hash>", Powertools' format) per identity; the agent runtime keys them by agent name and event id.
--
-- Same rules as 0004_memory.sql: the three identity columns, row-level security ENABLED and FORCED, policies reading
-- the per-transaction settings through public.soorma_platform_tenant() / soorma_service_tenant() /
-- soorma_service_user(), plus the admin-erase policies of 0005; soorma_app gets its table privileges from 0001's
-- default privileges.
--
-- Columns mirror Powertools' DataRecord exactly, units included:
--   status                        'INPROGRESS' | 'COMPLETED' ('EXPIRED' is derived from expiry_timestamp, never stored)
--   expiry_timestamp              epoch SECONDS after which the record counts as absent
--   in_progress_expiry_timestamp  epoch MILLISECONDS after which an INPROGRESS record may be taken over (the
--                                 invocation that wrote it has timed out or crashed); null = no in-progress expiry
--   response_data                 the function's response, JSON text ('' until COMPLETED)
--   payload_hash                  the payload validation hash ('' when validation is off)
-- The conditional create (PUT) succeeds when no row exists, or the row is expired (expiry_timestamp < now in
-- seconds), or it is INPROGRESS with an in_progress_expiry_timestamp < now in milliseconds: Powertools' DynamoDB
-- condition expression, as one INSERT ... ON CONFLICT DO UPDATE ... WHERE.
create table memory.idempotency_records (
  platform_tenant_id            text not null,
  service_tenant_id             text not null,
  service_user_id               text not null,
  key                           text not null,
  status                        text not null check (status in ('INPROGRESS', 'COMPLETED')),
  expiry_timestamp              bigint not null,
  in_progress_expiry_timestamp  bigint,
  response_data                 text not null default '',
  payload_hash                  text not null default '',
  created_at                    timestamptz not null default now(),
  updated_at                    timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, key)
);
-- The opportunistic purge of expired rows (the route deletes a few of the caller's expired rows on each create;
-- DynamoDB's TTL does this for Powertools' own layer).
create index idempotency_records_expiry_idx on memory.idempotency_records
  (platform_tenant_id, service_tenant_id, service_user_id, expiry_timestamp);

alter table memory.idempotency_records enable row level security;
alter table memory.idempotency_records force row level security;

create policy idempotency_records_owner on memory.idempotency_records for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy idempotency_records_erase_read on memory.idempotency_records for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy idempotency_records_erase on memory.idempotency_records for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));
