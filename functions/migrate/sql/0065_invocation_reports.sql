-- Function GB-seconds per goal in AWS (issue 18 item 3; docs/usage-and-llm.md "GB-seconds in AWS";
-- soorma.functions.tracker.invocation_usage).
--
-- A CloudWatch Logs subscription on each agent function's log group delivers two kinds of records, in any order and
-- possibly in different deliveries: Lambda's `platform.report` (billed duration, memory size) and the SDK runtime's
-- `soorma.invocation` line (the goals of the events the invocation handled), both naming the invocation's request id.
-- gateway.invocation_reports joins the two halves per (log group, request id). Both are written to a log group the
-- agent's own code can write to as well, so:
--  * the billed duration kept is the GREATEST one reported for the request id (Lambda always writes the real one, so
--    a forged smaller report cannot lower it), capped by the recorder at the function's timeout;
--  * the platform tenant comes from the deployment (the recorder's configuration per log group), never from the log,
--    and only goals of that platform tenant are attributed (their owners read from gateway.goals), so an agent's
--    output can never put usage on another platform tenant's goals;
--  * the goals are taken from the first `soorma.invocation` line of the request id, and each invocation is counted
--    once: attributed_ms records what was already added, a later greater report adds only the difference.
-- Rows are the platform's bookkeeping: no policy lets soorma_app read or write them; the SECURITY DEFINER functions
-- below are the only way in. Rows older than a day are purged (CloudWatch Logs gives up redelivering long before).
create table gateway.invocation_reports (
  platform_tenant_id text not null,
  log_group          text not null check (length(log_group) between 1 and 512),
  request_id         text not null check (length(request_id) between 1 and 128),
  billed_ms          bigint not null default 0 check (billed_ms >= 0),
  memory_mb          integer not null default 0 check (memory_mb >= 0),
  goals              uuid[],
  attributed_ms      bigint not null default 0 check (attributed_ms >= 0),
  counted            boolean not null default false,
  created_at         timestamptz not null default now(),
  primary key (log_group, request_id)
);
create index invocation_reports_created on gateway.invocation_reports (created_at);
alter table gateway.invocation_reports enable row level security;
alter table gateway.invocation_reports force row level security;
do $$
begin
  -- the owner's own policy: only the SECURITY DEFINER functions below (run as the owner) touch these rows
  execute format('create policy invocation_reports_owner_all on gateway.invocation_reports to %I'
                 ' using (true) with check (true)', current_user);
end
$$;
revoke all on gateway.invocation_reports from soorma_app;

-- One `platform.report` of (p_log_group, p_request_id): keeps the greatest billed duration and memory size seen.
create function gateway.note_invocation_report(p_platform_tenant text, p_log_group text, p_request_id text,
                                               p_billed_ms bigint, p_memory_mb integer) returns void
  language sql volatile security definer set search_path = pg_catalog, public as $$
    insert into gateway.invocation_reports as r (platform_tenant_id, log_group, request_id, billed_ms, memory_mb)
    values (p_platform_tenant, p_log_group, p_request_id, greatest(p_billed_ms, 0), greatest(p_memory_mb, 0))
    on conflict (log_group, request_id) do update
      set billed_ms = greatest(r.billed_ms, excluded.billed_ms), memory_mb = greatest(r.memory_mb, excluded.memory_mb)
$$;
revoke all on function gateway.note_invocation_report(text, text, text, bigint, integer) from public;
grant execute on function gateway.note_invocation_report(text, text, text, bigint, integer) to soorma_app;

-- One `soorma.invocation` line of (p_log_group, p_request_id): the first one's goals are kept.
create function gateway.note_invocation_goals(p_platform_tenant text, p_log_group text, p_request_id text,
                                              p_goals uuid[]) returns void
  language sql volatile security definer set search_path = pg_catalog, public as $$
    insert into gateway.invocation_reports as r (platform_tenant_id, log_group, request_id, goals)
    values (p_platform_tenant, p_log_group, p_request_id, p_goals)
    on conflict (log_group, request_id) do update set goals = coalesce(r.goals, excluded.goals)
$$;
revoke all on function gateway.note_invocation_goals(text, text, text, uuid[]) from public;
grant execute on function gateway.note_invocation_goals(text, text, text, uuid[]) to soorma_app;

-- What (p_log_group, p_request_id) adds now, once both halves are in: one row per goal of the row's platform tenant
-- named by the invocation's line (owner from gateway.goals), with the billed milliseconds not attributed yet, the
-- memory size, how many goals share them and whether the invocation is counted now (the first time only). Marks
-- them attributed in the same statement's transaction: the caller adds them to gateway.goal_usage in it too.
create function gateway.claim_invocation_usage(p_log_group text, p_request_id text)
  returns table (platform_tenant_id text, service_tenant_id text, service_user_id text, goal_id uuid,
                 billed_ms bigint, memory_mb integer, sharing integer, count_invocation boolean)
  language plpgsql volatile security definer set search_path = pg_catalog, public as $$
declare
  r gateway.invocation_reports%rowtype;
begin
  select * into r from gateway.invocation_reports i
   where i.log_group = p_log_group and i.request_id = p_request_id for update;
  if not found or r.goals is null or r.billed_ms = 0 or r.billed_ms <= r.attributed_ms then
    return;
  end if;
  update gateway.invocation_reports i set attributed_ms = r.billed_ms, counted = true
   where i.log_group = p_log_group and i.request_id = p_request_id;
  return query
    select g.platform_tenant_id, g.service_tenant_id, g.service_user_id, g.goal_id, r.billed_ms - r.attributed_ms,
           r.memory_mb, (count(*) over ())::integer, not r.counted
      from gateway.goals g
     where g.goal_id = any(r.goals) and g.platform_tenant_id = r.platform_tenant_id;
end
$$;
revoke all on function gateway.claim_invocation_usage(text, text) from public;
grant execute on function gateway.claim_invocation_usage(text, text) to soorma_app;

-- Rows of invocations older than a day (kept that long so a redelivered record finds its row and is not counted
-- again); returns how many were deleted.
create function gateway.purge_invocation_reports() returns integer
  language sql volatile security definer set search_path = pg_catalog, public as $$
    with gone as (delete from gateway.invocation_reports where created_at < now() - interval '1 day' returning 1)
    select count(*)::integer from gone
$$;
revoke all on function gateway.purge_invocation_reports() from public;
grant execute on function gateway.purge_invocation_reports() to soorma_app;
