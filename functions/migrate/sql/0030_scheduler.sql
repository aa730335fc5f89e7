-- Durable timers, race-free waits for an event, and scheduled goals (issue 14, items 4 and 5;
-- soorma.functions.shared.timers, soorma.functions.gateway.schedules, soorma.local.scheduler).
--
-- scheduler.timers: one row per event to publish later. It is written in the caller's transaction (so a timer exists
-- exactly when the work that scheduled it committed), keyed per identity by the caller's `timer_key` (scheduling the
-- same key twice is one timer), and fired once: the firing claims due rows with FOR UPDATE SKIP LOCKED (two firers
-- never take the same row), publishes the stored envelope (its id fixed when it was scheduled, so a publish repeated
-- after a crash is one message: JetStream's Nats-Msg-Id de-duplication and the consumers' idempotency by event id),
-- then marks it fired in the same transaction. `kind = 'schedule_run'` rows are the next run of a schedule: firing
-- one submits a goal (idempotency key = schedule and run time) and inserts the run after it.
--
-- Inserting or moving a pending timer sends NOTIFY soorma_timer_due (payload: the due time, epoch seconds; nothing
-- tenant-specific), so the local stack's scheduler, which sleeps until the earliest due time, wakes when an earlier
-- one is added instead of polling (a database queried every minute never pauses: docs/deploy-aws.md).
create schema if not exists scheduler;
grant usage on schema scheduler to soorma_app;

create table scheduler.timers (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  timer_key          text not null check (length(timer_key) between 1 and 255),
  timer_id           uuid not null default gen_random_uuid() unique,
  kind               text not null default 'event' check (kind in ('event', 'schedule_run')),
  due_at             timestamptz not null,
  envelope           jsonb not null default '{}'::jsonb,
  schedule_id        uuid,
  status             text not null default 'pending' check (status in ('pending', 'fired', 'cancelled')),
  created_at         timestamptz not null default now(),
  fired_at           timestamptz,
  primary key (platform_tenant_id, service_tenant_id, service_user_id, timer_key)
);
create index timers_due on scheduler.timers (due_at) where status = 'pending';

-- A wait for an event: (correlation_id, event_type) within one identity. Its outcome is delivered by its timer
-- (timer_id): scheduled at the timeout with the "timed_out" envelope, or moved to now with the "satisfied" envelope by
-- the goal_events trigger below when the awaited event is recorded. One timer fires once, so a wait is satisfied or
-- times out, never both.
create table scheduler.waits (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  wait_id            uuid not null,
  correlation_id     text not null,
  event_type         text not null,
  timer_id           uuid not null,
  status             text not null default 'waiting' check (status in ('waiting', 'satisfied', 'timed_out')),
  matched_event_id   text,
  created_at         timestamptz not null default now(),
  resolved_at        timestamptz,
  primary key (platform_tenant_id, service_tenant_id, service_user_id, wait_id)
);
create index waits_pending on scheduler.waits (correlation_id, event_type) where status = 'waiting';
create index waits_timer on scheduler.waits (timer_id);

-- A recurring goal: an EventBridge Scheduler expression (cron(...) / rate(...)) in a time zone.
create table scheduler.schedules (
  platform_tenant_id text not null,
  service_tenant_id  text not null,
  service_user_id    text not null,
  principal_id       text,
  schedule_id        uuid not null unique,
  expression         text not null,
  timezone           text not null default 'UTC',
  goal_type          text not null,
  data               jsonb not null default '{}'::jsonb,
  session_id         text,
  state              text not null default 'enabled' check (state in ('enabled', 'paused')),
  next_run_at        timestamptz,
  last_run_at        timestamptz,
  run_count          integer not null default 0,
  created_at         timestamptz not null default now(),
  updated_at         timestamptz not null default now(),
  primary key (platform_tenant_id, service_tenant_id, service_user_id, schedule_id)
);

alter table gateway.goals add column schedule_id uuid;
create index goals_schedule on gateway.goals (schedule_id, created_at) where schedule_id is not null;

do $$
declare
  t text;
begin
  foreach t in array array['timers', 'waits', 'schedules'] loop
    execute format('alter table scheduler.%I enable row level security', t);
    execute format('alter table scheduler.%I force row level security', t);
    execute format($p$create policy %I on scheduler.%I to soorma_app
      using (platform_tenant_id = public.soorma_platform_tenant()
             and service_tenant_id = public.soorma_service_tenant()
             and service_user_id = public.soorma_service_user())
      with check (platform_tenant_id = public.soorma_platform_tenant()
                  and service_tenant_id = public.soorma_service_tenant()
                  and service_user_id = public.soorma_service_user())$p$, t || '_identity', t);
    -- the firing functions below are SECURITY DEFINER: they run as this owner and see every tenant's due rows
    execute format('create policy %I on scheduler.%I to %I using (true) with check (true)',
                   t || '_owner_all', t, current_user);
  end loop;
end
$$;
revoke all on scheduler.timers, scheduler.waits, scheduler.schedules from soorma_app;
grant select, insert, update on scheduler.timers to soorma_app;
grant select, insert, update on scheduler.waits to soorma_app;
grant select, insert, update, delete on scheduler.schedules to soorma_app;

create function scheduler.notify_timer_due() returns trigger
  language plpgsql as $$
begin
  perform pg_notify('soorma_timer_due', extract(epoch from new.due_at)::text);
  return null;
end
$$;
create trigger timers_notify_due
  after insert or update of due_at, status on scheduler.timers
  for each row when (new.status = 'pending')
  execute function scheduler.notify_timer_due();

-- The firer's view across tenants: the due pending timers, locked (SKIP LOCKED: another firer takes others) until
-- the calling transaction ends; it publishes them and calls scheduler.mark_fired in the same transaction.
create function scheduler.claim_due_timers(p_limit integer)
  returns table (timer_id uuid, platform_tenant_id text, service_tenant_id text, service_user_id text,
                 timer_key text, kind text, due_at timestamptz, envelope jsonb, schedule_id uuid)
  language sql volatile security definer set search_path = pg_catalog, pg_temp as $$
    select t.timer_id, t.platform_tenant_id, t.service_tenant_id, t.service_user_id, t.timer_key, t.kind, t.due_at,
           t.envelope, t.schedule_id
      from scheduler.timers t
     where t.status = 'pending' and t.due_at <= clock_timestamp()
     order by t.due_at
     limit p_limit
       for update skip locked
$$;
revoke all on function scheduler.claim_due_timers(integer) from public;
grant execute on function scheduler.claim_due_timers(integer) to soorma_app;

create function scheduler.mark_fired(p_timer_ids uuid[]) returns integer
  language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
  n integer;
begin
  update scheduler.timers set status = 'fired', fired_at = clock_timestamp()
   where timer_id = any(p_timer_ids) and status = 'pending';
  get diagnostics n = row_count;
  update scheduler.waits set status = 'timed_out', resolved_at = clock_timestamp()
   where timer_id = any(p_timer_ids) and status = 'waiting';
  return n;
end
$$;
revoke all on function scheduler.mark_fired(uuid[]) from public;
grant execute on function scheduler.mark_fired(uuid[]) to soorma_app;

-- When the earliest pending timer is due (NULL: none): what the local scheduler sleeps until.
create function scheduler.next_due() returns timestamptz
  language sql stable security definer set search_path = pg_catalog, pg_temp as $$
    select min(due_at) from scheduler.timers where status = 'pending'
$$;
revoke all on function scheduler.next_due() from public;
grant execute on function scheduler.next_due() to soorma_app;

-- The lock that makes a wait race-free: the wait's registration and the recording of a matching event both take it
-- first, so whichever commits second sees the other's row (READ COMMITTED: each statement after the lock sees what
-- committed before it was granted).
create function scheduler.wait_lock(p_platform text, p_tenant text, p_user text, p_correlation text, p_type text)
  returns void language sql volatile as $$
    select pg_advisory_xact_lock(hashtextextended(
      p_platform || chr(31) || p_tenant || chr(31) || p_user || chr(31) || p_correlation || chr(31) || p_type, 14))
$$;
grant execute on function scheduler.wait_lock(text, text, text, text, text) to soorma_app;

-- An event recorded by the tracker satisfies the identity's waits on (its correlation id, its type): their timer is
-- moved to now with the "satisfied" outcome, unless it already fired (timed out first).
create function scheduler.satisfy_waits() returns trigger
  language plpgsql as $$
declare
  w record;
begin
  if new.correlation_id is null then
    return null;
  end if;
  perform scheduler.wait_lock(new.platform_tenant_id, new.service_tenant_id, new.service_user_id,
                              new.correlation_id, new.type);
  for w in select * from scheduler.waits
            where platform_tenant_id = new.platform_tenant_id and service_tenant_id = new.service_tenant_id
              and service_user_id = new.service_user_id and correlation_id = new.correlation_id
              and event_type = new.type and status = 'waiting'
            for update loop
    update scheduler.timers t
       set due_at = clock_timestamp(),
           envelope = jsonb_set(t.envelope, '{data,wait}', coalesce(t.envelope #> '{data,wait}', '{}'::jsonb)
                      || jsonb_build_object('status', 'satisfied', 'event_id', new.event_id, 'event_type', new.type,
                                            'event_data', new.data_summary))
     where t.timer_id = w.timer_id and t.status = 'pending';
    if found then
      update scheduler.waits set status = 'satisfied', resolved_at = clock_timestamp(),
                                 matched_event_id = new.event_id
       where platform_tenant_id = w.platform_tenant_id and service_tenant_id = w.service_tenant_id
         and service_user_id = w.service_user_id and wait_id = w.wait_id;
    end if;
  end loop;
  return null;
end
$$;
create trigger goal_events_satisfy_waits
  after insert on gateway.goal_events
  for each row execute function scheduler.satisfy_waits();
