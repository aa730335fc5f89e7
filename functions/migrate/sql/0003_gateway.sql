-- Gateway: API keys, goals, and the tracker's tables (goal events and tasks).
--
-- Goals, goal events and goal tasks are owned by (platform tenant, service tenant, service user): RLS enabled and
-- forced, one policy comparing all three columns with the transaction's identity settings.
-- API keys are looked up before the caller's tenant is known, so the authorizer reads them only through the
-- SECURITY DEFINER function gateway.resolve_api_key(key_id) (the hash comparison happens in Python, in constant
-- time). soorma_app may create and revoke keys of the platform tenant in its transaction identity (RLS), and read
-- every column but key_hash; the owner connection may manage every key.

create table gateway.api_keys (
  key_id             text primary key check (key_id ~ '^[A-Za-z0-9]{8,64}$'),
  key_hash           text not null,
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  principal_id       text not null,
  role               text not null check (role in ('admin', 'developer', 'agent', 'user')),
  name               text not null default '',
  created_at         timestamptz not null default now(),
  revoked_at         timestamptz
);
create index api_keys_tenant on gateway.api_keys (platform_tenant_id);

alter table gateway.api_keys enable row level security;
alter table gateway.api_keys force row level security;
-- Keys belong to a platform tenant (an admin manages all keys of its tenant).
create policy api_keys_platform_tenant on gateway.api_keys to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());
do $$
begin
  execute format('create policy api_keys_owner_all on gateway.api_keys to %I using (true) with check (true)',
                 current_user);
end
$$;
revoke all on gateway.api_keys from soorma_app;
grant insert on gateway.api_keys to soorma_app;
grant select (key_id, platform_tenant_id, service_tenant_id, service_user_id, principal_id, role, name, created_at,
              revoked_at) on gateway.api_keys to soorma_app;
grant update (revoked_at) on gateway.api_keys to soorma_app;

create function gateway.resolve_api_key(p_key_id text)
  returns table (key_id text, key_hash text, platform_tenant_id text, service_tenant_id text,
                 service_user_id text, principal_id text, role text, revoked_at timestamptz)
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select k.key_id, k.key_hash, k.platform_tenant_id, k.service_tenant_id, k.service_user_id, k.principal_id,
           k.role, k.revoked_at
      from gateway.api_keys k
     where k.key_id = p_key_id
$$;
revoke all on function gateway.resolve_api_key(text) from public;
grant execute on function gateway.resolve_api_key(text) to soorma_app;

create table gateway.goals (
  goal_id            uuid primary key,
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  principal_id       text,
  goal_type          text not null,
  data               jsonb not null default '{}'::jsonb,
  session_id         text,
  status             text not null default 'running' check (status in ('running', 'completed', 'failed')),
  result             jsonb,
  error              text,
  response_event     text not null,
  event_id           text,
  created_at         timestamptz not null default now(),
  completed_at       timestamptz
);
create index goals_identity on gateway.goals (platform_tenant_id, service_tenant_id, service_user_id, created_at);

-- One row per recorded event; idempotent by event id within one identity (a redelivery is recorded once, and one
-- tenant's event ids can never shadow another's).
create table gateway.goal_events (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  event_id           text not null,
  goal_id            text not null,
  type               text not null,
  topic              text not null,
  correlation_id     text,
  parent_event_id    text,
  source             text,
  time               timestamptz not null,
  data_summary       jsonb not null default '{}'::jsonb,
  recorded_at        timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, event_id)
);
create index goal_events_goal on gateway.goal_events (goal_id, time);

-- A task is one request/response pair: task_id is the request's correlation_id.
create table gateway.goal_tasks (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  task_id            text not null,
  goal_id            text not null,
  event_type         text,
  status             text not null check (status in ('running', 'completed', 'failed')),
  agent              text,
  request_event_id   text,
  result_event_id    text,
  started_at         timestamptz,
  completed_at       timestamptz,
  primary key (platform_tenant_id, service_tenant_id, service_user_id, task_id)
);
create index goal_tasks_goal on gateway.goal_tasks (goal_id, started_at);

alter table gateway.goals enable row level security;
alter table gateway.goals force row level security;
alter table gateway.goal_events enable row level security;
alter table gateway.goal_events force row level security;
alter table gateway.goal_tasks enable row level security;
alter table gateway.goal_tasks force row level security;

create policy goals_identity on gateway.goals to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy goal_events_identity on gateway.goal_events to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy goal_tasks_identity on gateway.goal_tasks to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());

-- Gateway: insert goals, mark a goal failed when its publish fails, read goals with their tasks and event counts.
-- Tracker: insert events (never rewritten), insert/complete tasks, complete goals. Nothing is deleted by the API.
revoke all on gateway.goals, gateway.goal_events, gateway.goal_tasks from soorma_app;
grant select, insert, update on gateway.goals to soorma_app;
grant select, insert on gateway.goal_events to soorma_app;
grant select, insert, update on gateway.goal_tasks to soorma_app;
