-- Live goal streams (issue 14, item 1; soorma.functions.gateway.streams, docs/architecture.md "Goal streams").
--
-- goal_events.seq: the event's position in its goal's stream (1, 2, 3 …), the cursor a client resumes from. The
-- tracker takes it from goals.event_seq, incremented in the transaction that records the event: that update locks
-- the goal's row until the transaction commits, so the events of one goal commit in the order of their numbers, and
-- a reader that has seen number n can never later find a smaller one appear (a global sequence would not give that:
-- numbers are taken in one order and committed in another). A redelivered event takes a number and then records
-- nothing, leaving a gap; a cursor is "after n", so gaps do no harm. Events recorded before this migration, and
-- events naming a goal their identity cannot see, have no number and are not streamed (the owner connection that
-- runs migrations cannot read the rows to number them: RLS is forced).
alter table gateway.goals add column event_seq bigint not null default 0;
alter table gateway.goal_events add column seq bigint;
create unique index goal_events_stream on gateway.goal_events
  (platform_tenant_id, service_tenant_id, service_user_id, goal_id, seq) where seq is not null;

-- One row per open WebSocket connection (API Gateway's connection id), owned by the identity that connected. goal_id
-- and cursor are set by the client's "follow" message; cursor is the last seq pushed to it, and is moved only under
-- the row's lock (select … for update), so two pushers (the tracker for two events, or a follow and the tracker)
-- never send one event twice or out of order. end_sent: the goal's end frame was pushed (sent once per follow).
create table gateway.stream_connections (
  connection_id      text primary key check (length(connection_id) between 1 and 128),
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  principal_id       text,
  goal_id            uuid,
  cursor             bigint not null default 0 check (cursor >= 0),
  end_sent           boolean not null default false,
  connected_at       timestamptz not null default now(),
  followed_at        timestamptz
);
create index stream_connections_goal on gateway.stream_connections
  (platform_tenant_id, service_tenant_id, service_user_id, goal_id) where goal_id is not null;

alter table gateway.stream_connections enable row level security;
alter table gateway.stream_connections force row level security;
create policy stream_connections_identity on gateway.stream_connections to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
revoke all on gateway.stream_connections from soorma_app;
grant select, insert, update, delete on gateway.stream_connections to soorma_app;

-- The identity a connection acts for, read by its connection id: a message or a disconnect carries only the
-- principal the authorizer resolved at $connect, while the connection may act for another service tenant/user
-- (an admin's override headers at $connect, soorma.identity.act_for). The id is API Gateway's, never a client's
-- input, and the row must belong to the caller's platform tenant. SECURITY DEFINER (the owner's policy below) like
-- gateway.resolve_api_key.
do $$
begin
  execute format('create policy stream_connections_owner_all on gateway.stream_connections to %I'
                 ' using (true) with check (true)', current_user);
end
$$;
create function gateway.stream_connection_identity(p_connection_id text, p_platform_tenant_id text)
  returns table (service_tenant_id text, service_user_id text, principal_id text)
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select c.service_tenant_id, c.service_user_id, c.principal_id
      from gateway.stream_connections c
     where c.connection_id = p_connection_id and c.platform_tenant_id = p_platform_tenant_id
$$;
revoke all on function gateway.stream_connection_identity(text, text) from public;
grant execute on function gateway.stream_connection_identity(text, text) to soorma_app;
