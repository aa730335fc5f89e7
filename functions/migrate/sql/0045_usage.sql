-- Usage and cost per goal and per tenant, budgets, and the LLM gateway's per-tenant provider settings (issue 18,
-- items 3 and 4; docs/usage-and-llm.md).
--
-- gateway.goal_usage: one row per (identity, goal, UTC day) with counters that only grow: the tracker adds the events
-- it records, the memory service its reads and writes, the LLM gateway the tokens of every call (and their price at
-- the model's list price, which depends on the model), the runtime the GB-seconds and invocations of its REPORT
-- figures. Calls without a goal are counted under the nil UUID. Owned by (platform tenant, service tenant, service
-- user) like the goals. A tenant's totals across its service tenants and users (per-tenant usage by day, budgets)
-- are read through gateway.tenant_usage(), which only ever answers for the transaction's own platform tenant.
create table gateway.goal_usage (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  goal_id            uuid not null,
  day                date not null,
  gb_seconds         double precision not null default 0 check (gb_seconds >= 0),
  invocations        bigint not null default 0 check (invocations >= 0),
  events             bigint not null default 0 check (events >= 0),
  memory_reads       bigint not null default 0 check (memory_reads >= 0),
  memory_writes      bigint not null default 0 check (memory_writes >= 0),
  input_tokens       bigint not null default 0 check (input_tokens >= 0),
  output_tokens      bigint not null default 0 check (output_tokens >= 0),
  input_tokens_usd   double precision not null default 0 check (input_tokens_usd >= 0),
  output_tokens_usd  double precision not null default 0 check (output_tokens_usd >= 0),
  updated_at         timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, goal_id, day)
);
create index goal_usage_tenant_day on gateway.goal_usage (platform_tenant_id, day);
alter table gateway.goal_usage enable row level security;
alter table gateway.goal_usage force row level security;
create policy goal_usage_identity on gateway.goal_usage to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
do $$
begin
  -- the owner's own policy: gateway.tenant_usage() (SECURITY DEFINER) sums the platform tenant's rows
  execute format('create policy goal_usage_owner_all on gateway.goal_usage to %I using (true) with check (true)',
                 current_user);
end
$$;
revoke all on gateway.goal_usage from soorma_app;
grant select, insert, update on gateway.goal_usage to soorma_app;

-- The transaction's platform tenant's usage per UTC day in [p_from, p_to] (every service tenant and user of it).
create function gateway.tenant_usage(p_from date, p_to date)
  returns table (day date, gb_seconds double precision, invocations bigint, events bigint, memory_reads bigint,
                 memory_writes bigint, input_tokens bigint, output_tokens bigint, input_tokens_usd double precision,
                 output_tokens_usd double precision, goals bigint)
  language sql stable security definer set search_path = pg_catalog, public as $$
    select u.day, sum(u.gb_seconds), sum(u.invocations)::bigint, sum(u.events)::bigint, sum(u.memory_reads)::bigint,
           sum(u.memory_writes)::bigint, sum(u.input_tokens)::bigint, sum(u.output_tokens)::bigint,
           sum(u.input_tokens_usd), sum(u.output_tokens_usd),
           count(distinct u.goal_id) filter (where u.goal_id <> '00000000-0000-0000-0000-000000000000')
      from gateway.goal_usage u
     where u.platform_tenant_id = public.soorma_platform_tenant() and u.day between p_from and p_to
     group by u.day order by u.day
$$;
revoke all on function gateway.tenant_usage(date, date) from public;
grant execute on function gateway.tenant_usage(date, date) to soorma_app;

-- Budget per platform tenant (policy rule, set by the tenant's admin with PUT /v1/policy): new goals and LLM calls
-- are refused while the month's cost (UTC calendar month, every service tenant and user) is at or over it.
alter table gateway.tenants add column monthly_budget_usd double precision check (monthly_budget_usd > 0);

-- The LLM gateway's provider per platform tenant: Bedrock (the platform's IAM role, no key) or an OpenAI-compatible
-- endpoint whose key is in Secrets Manager (secret_name; the key itself never enters the database).
create table gateway.llm_settings (
  platform_tenant_id text primary key,
  provider           text not null check (provider in ('bedrock', 'openai')),
  model              text not null check (length(model) between 1 and 200),
  base_url           text check (length(base_url) <= 2000),
  secret_name        text check (length(secret_name) <= 512),
  updated_by         text,
  updated_at         timestamptz not null default now()
);
alter table gateway.llm_settings enable row level security;
alter table gateway.llm_settings force row level security;
create policy llm_settings_platform_tenant on gateway.llm_settings to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant())
  with check (platform_tenant_id = public.soorma_platform_tenant());
revoke all on gateway.llm_settings from soorma_app;
grant select, insert, update, delete on gateway.llm_settings to soorma_app;
