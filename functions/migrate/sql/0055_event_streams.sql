-- Event subscriptions over the live stream (issue 17: soorma-core's EventClient from outside the platform;
-- soorma.functions.gateway.streams "subscribe", docs/event-client.md).
--
-- gateway.stream_events: every event the tracker receives, under the envelope's identity (RLS below), numbered per
-- identity (seq: 1, 2, 3 …, the cursor a subscriber resumes from). The number is taken from the identity's row of
-- gateway.stream_heads in the transaction that records the event: that upsert locks the row until the transaction
-- commits, so one identity's events commit in the order of their numbers and a reader that has seen n never later
-- finds a smaller one appear (as goals.event_seq does for goal streams, migration 0020). envelope is the event as
-- published, without its delivery grant (a credential, never streamed). Rows older than the retention
-- (SOORMA_EVENT_STREAM_RETENTION_S) are pruned by the tracker as it records.
create table gateway.stream_heads (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  last_seq           bigint not null default 0,
  primary key (platform_tenant_id, service_tenant_id, service_user_id)
);

create table gateway.stream_events (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  seq                bigint not null,
  event_id           text not null,
  type               text not null,
  topic              text not null,
  envelope           jsonb not null,
  recorded_at        timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, seq)
);
create unique index stream_events_event on gateway.stream_events
  (platform_tenant_id, service_tenant_id, service_user_id, event_id);
create index stream_events_recorded on gateway.stream_events
  (platform_tenant_id, service_tenant_id, service_user_id, recorded_at);

-- A connection's subscription (the "subscribe" message): the topics and event types it wants (null: all), and
-- event_cursor, the last stream_events.seq pushed to it, moved only under the row's lock like cursor.
alter table gateway.stream_connections add column topics text[];
alter table gateway.stream_connections add column event_types text[];
alter table gateway.stream_connections add column event_cursor bigint check (event_cursor >= 0);
create index stream_connections_subscribed on gateway.stream_connections
  (platform_tenant_id, service_tenant_id, service_user_id) where event_cursor is not null;

alter table gateway.stream_heads enable row level security;
alter table gateway.stream_heads force row level security;
alter table gateway.stream_events enable row level security;
alter table gateway.stream_events force row level security;
create policy stream_heads_identity on gateway.stream_heads to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy stream_events_identity on gateway.stream_events to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
revoke all on gateway.stream_heads from soorma_app;
revoke all on gateway.stream_events from soorma_app;
grant select, insert, update on gateway.stream_heads to soorma_app;
grant select, insert, delete on gateway.stream_events to soorma_app;
