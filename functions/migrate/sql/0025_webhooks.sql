-- Webhooks (issue 14 item 2; soorma.functions.webhooks): subscriptions that name a URL, and durable deliveries of a
-- goal's terminal event (goal.completed / goal.failed / goal.cancelled) and, when asked, its progress (goal.progress),
-- signed per the Standard Webhooks specification (https://www.standardwebhooks.com/).
--
-- subscriptions: tenant-wide (goal_id null: every goal of the identity) or for one goal (POST /v1/goals webhook).
-- Owned by (platform tenant, service tenant, service user) like the goals: a subscription only ever matches goals its
-- own identity could read, so tenant B's goal is never sent to tenant A's URL. No secret is stored: the signing secret
-- is derived from the platform's secret and the subscription id (soorma.functions.webhooks.signing), shown once at
-- creation.
--
-- deliveries: one row per attempt series (one event to one subscription). Rows are created by triggers, so every code
-- path that ends a goal (the tracker's result and dead-letter notices, the gateway's cancel, a failed publish) or
-- records progress is covered, in the same transaction as the change itself. The trigger also sends NOTIFY
-- soorma_webhook_due (no payload) for the local stack's sender. The sender works through the SECURITY DEFINER
-- functions below (it serves every tenant); the API reads and replays deliveries under the caller's identity (RLS).

create schema if not exists webhooks;
grant usage on schema webhooks to soorma_app;

create table webhooks.subscriptions (
  subscription_id    uuid primary key,
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  goal_id            uuid,
  url                text not null check (length(url) between 1 and 2048),
  events             text[] not null check (cardinality(events) > 0 and events <@ array['terminal', 'progress']),
  description        text not null default '' check (length(description) <= 500),
  created_at         timestamptz not null default now(),
  deleted_at         timestamptz
);
create index subscriptions_identity on webhooks.subscriptions
  (platform_tenant_id, service_tenant_id, service_user_id, created_at desc) where deleted_at is null;
create index subscriptions_goal on webhooks.subscriptions (goal_id) where goal_id is not null;

create table webhooks.deliveries (
  delivery_id        uuid primary key,
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  subscription_id    uuid not null references webhooks.subscriptions (subscription_id),
  goal_id            uuid not null,
  event_type         text not null,
  url                text not null,
  payload            jsonb not null,
  state              text not null default 'pending' check (state in ('pending', 'delivered', 'dead')),
  attempts           integer not null default 0,
  next_attempt_at    timestamptz,
  last_status        integer,
  last_error         text,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  delivered_at       timestamptz
);
create index deliveries_due on webhooks.deliveries (next_attempt_at) where state = 'pending';
create index deliveries_identity on webhooks.deliveries
  (platform_tenant_id, service_tenant_id, service_user_id, created_at desc, delivery_id desc);

alter table webhooks.subscriptions enable row level security;
alter table webhooks.subscriptions force row level security;
alter table webhooks.deliveries enable row level security;
alter table webhooks.deliveries force row level security;
create policy subscriptions_identity on webhooks.subscriptions to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
create policy deliveries_identity on webhooks.deliveries to soorma_app
  using (platform_tenant_id = public.soorma_platform_tenant()
         and service_tenant_id = public.soorma_service_tenant()
         and service_user_id = public.soorma_service_user())
  with check (platform_tenant_id = public.soorma_platform_tenant()
              and service_tenant_id = public.soorma_service_tenant()
              and service_user_id = public.soorma_service_user());
-- The SECURITY DEFINER functions below run as the owner, which FORCE ROW LEVEL SECURITY subjects to RLS too.
do $$
begin
  execute format('create policy subscriptions_owner_all on webhooks.subscriptions to %I using (true) with check (true)',
                 current_user);
  execute format('create policy deliveries_owner_all on webhooks.deliveries to %I using (true) with check (true)',
                 current_user);
end
$$;

-- API: create, list and delete (soft) subscriptions; list deliveries; replay one (back to pending, attempts reset).
revoke all on webhooks.subscriptions, webhooks.deliveries from soorma_app;
grant select, insert on webhooks.subscriptions to soorma_app;
grant update (deleted_at) on webhooks.subscriptions to soorma_app;
grant select on webhooks.deliveries to soorma_app;
grant update (state, attempts, next_attempt_at, last_error, updated_at) on webhooks.deliveries to soorma_app;

-- ---------------------------------------------------------------------------------------------------------------
-- Triggers: a goal's end and a task's progress become deliveries
-- ---------------------------------------------------------------------------------------------------------------
create function webhooks.enqueue(p_platform_tenant_id text, p_service_tenant_id text, p_service_user_id text,
                                 p_goal_id uuid, p_kind text, p_event_type text, p_data jsonb) returns integer
  language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  n integer;
begin
  insert into webhooks.deliveries (delivery_id, platform_tenant_id, service_tenant_id, service_user_id,
                                   subscription_id, goal_id, event_type, url, payload, next_attempt_at)
  select gen_random_uuid(), s.platform_tenant_id, s.service_tenant_id, s.service_user_id, s.subscription_id,
         p_goal_id, p_event_type, s.url,
         jsonb_build_object('type', p_event_type,
                            'timestamp', to_char(clock_timestamp() at time zone 'UTC',
                                                 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                            'data', p_data),
         clock_timestamp()
    from webhooks.subscriptions s
   where s.platform_tenant_id = p_platform_tenant_id
     and s.service_tenant_id = p_service_tenant_id
     and s.service_user_id = p_service_user_id
     and s.deleted_at is null
     and p_kind = any (s.events)
     and (s.goal_id is null or s.goal_id = p_goal_id);
  get diagnostics n = row_count;
  if n > 0 then
    perform pg_notify('soorma_webhook_due', '');
  end if;
  return n;
end
$$;
revoke all on function webhooks.enqueue(text, text, text, uuid, text, text, jsonb) from public;

create function webhooks.goal_ended() returns trigger
  language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
begin
  perform webhooks.enqueue(new.platform_tenant_id, new.service_tenant_id, new.service_user_id, new.goal_id,
                           'terminal', 'goal.' || new.status,
                           jsonb_build_object('goal_id', new.goal_id, 'goal_type', new.goal_type,
                                              'status', new.status, 'result', new.result, 'error', new.error,
                                              'session_id', new.session_id, 'completed_at', new.completed_at));
  return null;
end
$$;
create trigger goals_webhooks
  after update of status on gateway.goals
  for each row
  when (new.status in ('completed', 'failed', 'cancelled') and old.status is distinct from new.status)
  execute function webhooks.goal_ended();

create function webhooks.task_progressed() returns trigger
  language plpgsql security definer set search_path = pg_catalog, pg_temp as $$
declare
  goal uuid;
begin
  begin
    goal := new.goal_id::uuid;
  exception when invalid_text_representation then
    return null;  -- a task outside any goal of the API: no subscription can name it
  end;
  perform webhooks.enqueue(new.platform_tenant_id, new.service_tenant_id, new.service_user_id, goal,
                           'progress', 'goal.progress',
                           jsonb_build_object('goal_id', goal, 'task_id', new.task_id, 'agent', new.agent,
                                              'event_type', new.event_type, 'progress', new.progress,
                                              'message', new.progress_message, 'progress_at', new.progress_at));
  return null;
end
$$;
create trigger goal_tasks_webhooks
  after update of progress_at on gateway.goal_tasks
  for each row
  when (new.progress_at is distinct from old.progress_at)
  execute function webhooks.task_progressed();

-- A goal's own webhook is attached right after the goal is created; the goal may have ended already (a fast agent).
-- Called in the same transaction that inserts the subscription, after locking the goal row (so the tracker's update
-- either committed before, and is caught up here, or waits for this transaction and its trigger sees the row).
create function webhooks.catch_up(p_subscription_id uuid) returns integer
  language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  s record;
  g record;
begin
  select * into s from webhooks.subscriptions where subscription_id = p_subscription_id
     and platform_tenant_id = public.soorma_platform_tenant()
     and service_tenant_id = public.soorma_service_tenant()
     and service_user_id = public.soorma_service_user();
  if not found or s.goal_id is null or not ('terminal' = any (s.events)) then
    return 0;
  end if;
  select * into g from gateway.goals where goal_id = s.goal_id
     and platform_tenant_id = s.platform_tenant_id and service_tenant_id = s.service_tenant_id
     and service_user_id = s.service_user_id for update;
  if not found or g.status not in ('completed', 'failed', 'cancelled') then
    return 0;
  end if;
  insert into webhooks.deliveries (delivery_id, platform_tenant_id, service_tenant_id, service_user_id,
                                   subscription_id, goal_id, event_type, url, payload, next_attempt_at)
  values (gen_random_uuid(), s.platform_tenant_id, s.service_tenant_id, s.service_user_id, s.subscription_id,
          g.goal_id, 'goal.' || g.status, s.url,
          jsonb_build_object('type', 'goal.' || g.status,
                             'timestamp', to_char(clock_timestamp() at time zone 'UTC',
                                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                             'data', jsonb_build_object('goal_id', g.goal_id, 'goal_type', g.goal_type,
                                                        'status', g.status, 'result', g.result, 'error', g.error,
                                                        'session_id', g.session_id,
                                                        'completed_at', g.completed_at)),
          clock_timestamp());
  perform pg_notify('soorma_webhook_due', '');
  return 1;
end
$$;
revoke all on function webhooks.catch_up(uuid) from public;
grant execute on function webhooks.catch_up(uuid) to soorma_app;

-- ---------------------------------------------------------------------------------------------------------------
-- The sender (every tenant's deliveries): claim due rows, record each attempt's outcome, and when the next is due
-- ---------------------------------------------------------------------------------------------------------------
-- Claiming counts the attempt and moves next_attempt_at by p_lease_s, so a sender that dies mid-attempt leaves a
-- row that is claimed again once the lease ran out (at-least-once; the webhook-id lets receivers drop a repeat).
create function webhooks.claim_due(p_limit integer, p_lease_s double precision)
  returns table (delivery_id uuid, subscription_id uuid, url text, payload jsonb, attempts integer,
                 event_type text, created_at timestamptz)
  language sql volatile security definer set search_path = pg_catalog, pg_temp as $$
    update webhooks.deliveries d
       set attempts = d.attempts + 1,
           next_attempt_at = clock_timestamp() + make_interval(secs => p_lease_s),
           updated_at = clock_timestamp()
     where d.delivery_id in (select x.delivery_id from webhooks.deliveries x
                              where x.state = 'pending' and x.next_attempt_at <= clock_timestamp()
                              order by x.next_attempt_at limit p_limit for update skip locked)
    returning d.delivery_id, d.subscription_id, d.url, d.payload, d.attempts, d.event_type, d.created_at
$$;
revoke all on function webhooks.claim_due(integer, double precision) from public;
grant execute on function webhooks.claim_due(integer, double precision) to soorma_app;

-- p_state: 'delivered', 'pending' (retry at p_next_attempt_at) or 'dead' (the last attempt failed).
create function webhooks.finish_attempt(p_delivery_id uuid, p_state text, p_status integer, p_error text,
                                        p_next_attempt_at timestamptz) returns void
  language sql volatile security definer set search_path = pg_catalog, pg_temp as $$
    update webhooks.deliveries
       set state = p_state, last_status = p_status, last_error = left(p_error, 1000),
           next_attempt_at = case when p_state = 'pending' then p_next_attempt_at end,
           delivered_at = case when p_state = 'delivered' then clock_timestamp() end,
           updated_at = clock_timestamp()
     where delivery_id = p_delivery_id
$$;
revoke all on function webhooks.finish_attempt(uuid, text, integer, text, timestamptz) from public;
grant execute on function webhooks.finish_attempt(uuid, text, integer, text, timestamptz) to soorma_app;

create function webhooks.next_due() returns timestamptz
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select min(next_attempt_at) from webhooks.deliveries where state = 'pending'
$$;
revoke all on function webhooks.next_due() from public;
grant execute on function webhooks.next_due() to soorma_app;

-- ---------------------------------------------------------------------------------------------------------------
-- AWS: one armed wake-up of the sender at a time (soorma.functions.webhooks.aws). The in-VPC part wakes itself with a
-- delayed SQS message when the next delivery falls due; arm_wake(at) says whether to send one: only when no wake is
-- armed for a time at or before ``at`` that is still to come, so concurrent invocations do not multiply the chain.
-- ---------------------------------------------------------------------------------------------------------------
create table webhooks.sender_wake (
  id      integer primary key check (id = 1),
  wake_at timestamptz
);
alter table webhooks.sender_wake enable row level security;
alter table webhooks.sender_wake force row level security;
do $$
begin
  execute format('create policy sender_wake_owner_all on webhooks.sender_wake to %I using (true) with check (true)',
                 current_user);
end
$$;
revoke all on webhooks.sender_wake from soorma_app;
insert into webhooks.sender_wake (id, wake_at) values (1, null);

create function webhooks.arm_wake(p_at timestamptz) returns boolean
  language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  armed boolean;
begin
  update webhooks.sender_wake set wake_at = p_at
   where id = 1 and (wake_at is null or wake_at <= clock_timestamp() or wake_at > p_at)
  returning true into armed;
  return coalesce(armed, false);
end
$$;
revoke all on function webhooks.arm_wake(timestamptz) from public;
grant execute on function webhooks.arm_wake(timestamptz) to soorma_app;
