-- Gateway: platform tenants (onboarding, status, rate-limit settings, policy), API key lifecycle (expiry, rotation
-- lineage), token buckets, goal idempotency and cancellation, sessions, and per-plan action counters.
--
-- Tenants are readable by soorma_app only for the transaction's own platform tenant, unless the transaction set
-- soorma.platform_admin = 'on' (the gateway does that only for an admin of the platform-operator tenant).
-- Token buckets are never touched by soorma_app directly: gateway.admit() (SECURITY DEFINER) checks the credential
-- and takes one token from the key's and the tenant's bucket (one call, one round trip per request).

create or replace function public.soorma_platform_admin() returns boolean
  language sql stable as $$ select coalesce(current_setting('soorma.platform_admin', true), '') = 'on' $$;

-- ---------------------------------------------------------------------------------------------------------------
-- Platform tenants
-- ---------------------------------------------------------------------------------------------------------------
create table gateway.tenants (
  platform_tenant_id   text primary key check (platform_tenant_id ~ '^[A-Za-z0-9_-]{1,64}$'),
  name                 text not null default '' check (length(name) <= 200),
  status               text not null default 'active' check (status in ('active', 'suspended')),
  -- rate limits (null: the deployment's defaults)
  key_rps              double precision check (key_rps > 0),
  key_burst            double precision check (key_burst >= 1),
  tenant_rps           double precision check (tenant_rps > 0),
  tenant_burst         double precision check (tenant_burst >= 1),
  -- policy (null: no restriction)
  allowed_goal_types   text[],
  allowed_event_types  text[],
  max_payload_bytes    integer check (max_payload_bytes > 0),
  max_actions_per_plan integer check (max_actions_per_plan > 0),
  created_by           text,
  created_at           timestamptz not null default now(),
  updated_at           timestamptz not null default now()
);

alter table gateway.tenants enable row level security;
alter table gateway.tenants force row level security;
create policy tenants_own_or_platform_admin on gateway.tenants to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant() or public.soorma_platform_admin())
  with check (platform_tenant_id = public.soorma_platform_tenant() or public.soorma_platform_admin());
do $$
begin
  execute format('create policy tenants_owner_all on gateway.tenants to %I using (true) with check (true)',
                 current_user);
end
$$;
revoke all on gateway.tenants from soorma_app;
grant select, insert, update on gateway.tenants to soorma_app;

-- ---------------------------------------------------------------------------------------------------------------
-- API keys: expiry, who created a key, and which key a rotation replaced.
-- ---------------------------------------------------------------------------------------------------------------
alter table gateway.api_keys add column expires_at timestamptz;
alter table gateway.api_keys add column created_by text;
alter table gateway.api_keys add column rotated_from text;
grant select (expires_at, created_by, rotated_from) on gateway.api_keys to soorma_app;
grant insert (key_id, key_hash, platform_tenant_id, service_tenant_id, service_user_id, principal_id, role, name,
              expires_at, created_by, rotated_from) on gateway.api_keys to soorma_app;

-- The authorizer's lookup (before the tenant is known): the key row and its tenant's status.
create function gateway.resolve_credential(p_key_id text)
  returns table (key_id text, key_hash text, platform_tenant_id text, service_tenant_id text,
                 service_user_id text, principal_id text, role text, revoked_at timestamptz,
                 expires_at timestamptz, tenant_status text)
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select k.key_id, k.key_hash, k.platform_tenant_id, k.service_tenant_id, k.service_user_id, k.principal_id,
           k.role, k.revoked_at, k.expires_at, t.status
      from gateway.api_keys k
      left join gateway.tenants t on t.platform_tenant_id = k.platform_tenant_id
     where k.key_id = p_key_id
$$;
revoke all on function gateway.resolve_credential(text) from public;
grant execute on function gateway.resolve_credential(text) to soorma_app;

create function gateway.tenant_status(p_platform_tenant_id text) returns text
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select status from gateway.tenants where platform_tenant_id = p_platform_tenant_id
$$;
revoke all on function gateway.tenant_status(text) from public;
grant execute on function gateway.tenant_status(text) to soorma_app;

-- ---------------------------------------------------------------------------------------------------------------
-- Token buckets (per API key or principal, and per platform tenant)
-- ---------------------------------------------------------------------------------------------------------------
create table gateway.rate_buckets (
  bucket             text primary key,
  platform_tenant_id text not null,
  tokens             double precision not null,
  capacity           double precision not null,
  rate               double precision not null,
  allowed            boolean not null default true,
  updated_at         timestamptz not null default clock_timestamp()
);
alter table gateway.rate_buckets enable row level security;
alter table gateway.rate_buckets force row level security;
do $$
begin
  execute format('create policy rate_buckets_owner_all on gateway.rate_buckets to %I using (true) with check (true)',
                 current_user);
end
$$;
revoke all on gateway.rate_buckets from soorma_app;

-- Admission of one request: verdict 'ok', 'revoked' (API key revoked or expired), 'suspended' (tenant), or 'limited'
-- (retry_after seconds until a token is back in the emptier bucket). The defaults come from the function's settings;
-- a tenant's own settings override them. One upsert locks both buckets (key first, then tenant: always that order,
-- so concurrent admissions cannot deadlock) and reads what they hold; only when both have a token is one taken from
-- each. A refused request spends nothing, so a key at its limit cannot drain its tenant's bucket.
create function gateway.admit(p_platform_tenant_id text, p_key_bucket text, p_key_id text,
                              p_key_rps double precision, p_key_burst double precision,
                              p_tenant_rps double precision, p_tenant_burst double precision)
  returns table (verdict text, retry_after double precision)
  language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  t record;
  k record;
  key_rate double precision;
  key_cap double precision;
  ten_rate double precision;
  ten_cap double precision;
  ok boolean;
  refused double precision;
begin
  select status, key_rps, key_burst, tenant_rps, tenant_burst into t
    from gateway.tenants where platform_tenant_id = p_platform_tenant_id;
  if found and t.status <> 'active' then
    return query select 'suspended'::text, 0::double precision;
    return;
  end if;
  if p_key_id is not null and p_key_id <> '' then
    select revoked_at, expires_at into k from gateway.api_keys where key_id = p_key_id;
    if not found or k.revoked_at is not null or (k.expires_at is not null and k.expires_at <= now()) then
      return query select 'revoked'::text, 0::double precision;
      return;
    end if;
  end if;
  key_rate := coalesce(t.key_rps, p_key_rps);
  key_cap := coalesce(t.key_burst, p_key_burst);
  ten_rate := coalesce(t.tenant_rps, p_tenant_rps);
  ten_cap := coalesce(t.tenant_burst, p_tenant_burst);

  with locked as (
    insert into gateway.rate_buckets as b (bucket, platform_tenant_id, tokens, capacity, rate, updated_at)
    values ('k:' || p_key_bucket, p_platform_tenant_id, key_cap, key_cap, key_rate, clock_timestamp()),
           ('t:' || p_platform_tenant_id, p_platform_tenant_id, ten_cap, ten_cap, ten_rate, clock_timestamp())
    on conflict (bucket) do update set capacity = excluded.capacity, rate = excluded.rate
    returning b.rate,
              least(b.capacity, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at)) * b.rate)
                as available
  )
  select bool_and(available >= 1), max(case when available < 1 then (1 - available) / rate end)
    into ok, refused from locked;
  if not ok then
    return query select 'limited'::text, greatest(refused, 0.001);
    return;
  end if;
  update gateway.rate_buckets b
     set tokens = least(b.capacity, b.tokens + greatest(0, extract(epoch from clock_timestamp() - b.updated_at))
                  * b.rate) - 1,
         allowed = true,
         updated_at = greatest(b.updated_at, clock_timestamp())
   where b.bucket in ('k:' || p_key_bucket, 't:' || p_platform_tenant_id);
  return query select 'ok'::text, 0::double precision;
end
$$;
revoke all on function gateway.admit(text, text, text, double precision, double precision, double precision,
                                     double precision) from public;
grant execute on function gateway.admit(text, text, text, double precision, double precision, double precision,
                                        double precision) to soorma_app;

-- ---------------------------------------------------------------------------------------------------------------
-- Goals: cancellation, idempotency keys, listing indexes
-- ---------------------------------------------------------------------------------------------------------------
alter table gateway.goals drop constraint goals_status_check;
alter table gateway.goals add constraint goals_status_check
  check (status in ('running', 'completed', 'failed', 'cancelled'));
alter table gateway.goals add column idempotency_key text check (length(idempotency_key) between 1 and 255);
alter table gateway.goals add column request_hash text;
create unique index goals_idempotency on gateway.goals
  (platform_tenant_id, service_tenant_id, service_user_id, idempotency_key) where idempotency_key is not null;
create index goals_listing on gateway.goals
  (platform_tenant_id, service_tenant_id, service_user_id, created_at desc, goal_id desc);
create index goals_session on gateway.goals
  (platform_tenant_id, service_tenant_id, service_user_id, session_id, created_at desc, goal_id desc)
  where session_id is not null;

-- ---------------------------------------------------------------------------------------------------------------
-- Sessions: a conversation that groups goals (created explicitly, or implicitly by the first goal naming it)
-- ---------------------------------------------------------------------------------------------------------------
create table gateway.sessions (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  session_id         text not null check (length(session_id) between 1 and 255),
  metadata           jsonb not null default '{}'::jsonb,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, session_id)
);
create index sessions_listing on gateway.sessions
  (platform_tenant_id, service_tenant_id, service_user_id, updated_at desc, session_id desc);
alter table gateway.sessions enable row level security;
alter table gateway.sessions force row level security;
create policy sessions_identity on gateway.sessions to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
revoke all on gateway.sessions from soorma_app;
grant select, insert, update on gateway.sessions to soorma_app;

-- ---------------------------------------------------------------------------------------------------------------
-- Actions per plan (policy max_actions_per_plan): action requests published through the gateway, per plan
-- ---------------------------------------------------------------------------------------------------------------
create table gateway.plan_actions (
  platform_tenant_id text not null,
  plan_key           text not null,
  actions            integer not null default 0,
  updated_at         timestamptz not null default now(),
  primary key (platform_tenant_id, plan_key)
);
alter table gateway.plan_actions enable row level security;
alter table gateway.plan_actions force row level security;
create policy plan_actions_platform_tenant on gateway.plan_actions to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());
revoke all on gateway.plan_actions from soorma_app;
grant select, insert, update on gateway.plan_actions to soorma_app;
