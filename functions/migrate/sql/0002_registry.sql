-- Registry: agents (with their deployment binding, the bridge's routing table) and event definitions.
--
-- Registry rows are scoped by platform tenant only (architecture.md "Database"); service_tenant_id and
-- service_user_id record who wrote the row last and take no part in the policies.
-- soorma_app reaches rows only through RLS; the bridge reads every tenant's routes through the SECURITY DEFINER
-- function registry.list_routes(), owned by the migration owner, which has its own "owner sees all" policy (FORCE
-- ROW LEVEL SECURITY applies to the table owner too, and in Aurora the owner is not a superuser).

create table registry.agents (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  agent_id           text not null check (length(agent_id) between 1 and 255),
  name               text not null check (length(name) between 1 and 255),
  description        text not null default '',
  version            text not null default '0.1.0',
  capabilities       jsonb not null default '[]'::jsonb,
  consumed_events    text[] not null default '{}',
  produced_events    text[] not null default '{}',
  deployment         jsonb,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  primary key (platform_tenant_id, agent_id)
);
create index agents_tenant_name on registry.agents (platform_tenant_id, name);
create index agents_consumed on registry.agents using gin (consumed_events);
create index agents_produced on registry.agents using gin (produced_events);
create index agents_deployed on registry.agents (platform_tenant_id) where deployment is not null;

create table registry.events (
  platform_tenant_id   text not null,
  service_tenant_id    text not null,
  service_user_id      text not null,
  event_name           text not null check (length(event_name) between 1 and 200),
  topic                text not null,
  description          text not null default '',
  payload_schema       jsonb,
  response_schema      jsonb,
  payload_schema_name  text,
  response_schema_name text,
  owner_agent_id       text,
  created_at           timestamptz not null default now(),
  updated_at           timestamptz not null default now(),
  primary key (platform_tenant_id, event_name)
);
create index events_tenant_topic on registry.events (platform_tenant_id, topic);

alter table registry.agents enable row level security;
alter table registry.agents force row level security;
alter table registry.events enable row level security;
alter table registry.events force row level security;

create policy agents_platform_tenant on registry.agents to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());
create policy events_platform_tenant on registry.events to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());

-- The migration owner (the owner of the SECURITY DEFINER functions below) sees every tenant's agents.
do $$
begin
  execute format('create policy agents_owner_all on registry.agents to %I using (true) with check (true)',
                 current_user);
end
$$;

-- Exactly what the registry function needs: events are never deleted through the API.
revoke all on registry.agents, registry.events from soorma_app;
grant select, insert, update, delete on registry.agents to soorma_app;
grant select, insert, update on registry.events to soorma_app;

-- Routes version: bumped whenever a route (a deployed agent's name or deployment) appears, changes or goes away,
-- so the bridge can poll one number instead of re-reading every route.
create table registry.route_version (
  singleton boolean primary key default true check (singleton),
  version   bigint not null default 0,
  changed_at timestamptz not null default now()
);
insert into registry.route_version default values;
revoke all on registry.route_version from soorma_app;

create function registry.bump_route_version() returns trigger
  language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  update registry.route_version set version = version + 1, changed_at = now() where singleton;
  return null;
end
$$;
revoke all on function registry.bump_route_version() from public;

create trigger agents_route_insert after insert on registry.agents
  for each row when (new.deployment is not null) execute function registry.bump_route_version();
create trigger agents_route_update after update on registry.agents
  for each row when (old.deployment is distinct from new.deployment or old.name is distinct from new.name)
  execute function registry.bump_route_version();
create trigger agents_route_delete after delete on registry.agents
  for each row when (old.deployment is not null) execute function registry.bump_route_version();

-- Every deployed agent of every platform tenant (the bridge's routing table).
create function registry.list_routes()
  returns table (platform_tenant_id text, agent_id text, name text, deployment jsonb, created_at timestamptz,
                 updated_at timestamptz)
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select a.platform_tenant_id, a.agent_id, a.name, a.deployment, a.created_at, a.updated_at
      from registry.agents a
     where a.deployment is not null
     order by a.platform_tenant_id, a.agent_id
$$;
revoke all on function registry.list_routes() from public;
grant execute on function registry.list_routes() to soorma_app;

create function registry.routes_version() returns bigint
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select version from registry.route_version where singleton
$$;
revoke all on function registry.routes_version() from public;
grant execute on function registry.routes_version() to soorma_app;
