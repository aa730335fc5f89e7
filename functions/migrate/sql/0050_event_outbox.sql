-- The transactional outbox of handler commits (issue 19; soorma.functions.gateway.commit, POST /v1/events/commit).
--
-- An agent's handler run sends what it did (events to publish, task-context writes, its idempotency record) in ONE
-- request; the gateway applies it in ONE transaction that also writes the events here, one row each, keyed by the
-- commit's idempotency key. After the commit the gateway publishes the rows (each with its fixed envelope id, so a
-- repeated publish is the same event: JetStream's Nats-Msg-Id de-duplication, consumers idempotent by event id) and
-- deletes them. Rows left by a gateway that stopped between commit and publish are relayed by the next commit of the
-- same key: the agent's handler failed (no answer), its event is redelivered, the commit finds its idempotency record
-- COMPLETED and publishes the rows still here. Relaying is therefore safe to repeat and needs no poller.
--
-- Same rules as 0004_memory.sql: the three identity columns, row-level security ENABLED and FORCED, policies on the
-- per-transaction settings, the admin-erase policies of 0005 (an erased service tenant's rows go with it).
create table gateway.event_outbox (
  platform_tenant_id  text not null,
  service_tenant_id   text not null,
  service_user_id     text not null,
  commit_key          text not null,
  position            integer not null check (position >= 0),
  event_id            text not null,
  envelope            jsonb not null,
  created_at          timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, commit_key, position)
);

alter table gateway.event_outbox enable row level security;
alter table gateway.event_outbox force row level security;

create policy event_outbox_owner on gateway.event_outbox for all
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy event_outbox_erase_read on gateway.event_outbox for select
  using (memory.erasable(platform_tenant_id, service_tenant_id));
create policy event_outbox_erase on gateway.event_outbox for delete
  using (memory.erasable(platform_tenant_id, service_tenant_id));
