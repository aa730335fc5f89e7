-- A goal that reaches a final state (completed, failed, cancelled) sends NOTIFY soorma_goal_done with its goal id, so
-- the gateway's long-poll (GET /v1/goals/{id}?wait=) wakes on the completion itself instead of a re-check schedule
-- (issue 19; soorma.functions.gateway.goals). A trigger rather than the code paths that end a goal: there are several
-- (the tracker's result and dead-letter notices, the gateway's cancel and failed publishes) and any future one is
-- covered. The notification is sent when the transaction commits, so a woken waiter reads the committed row.
-- The payload is the goal id and nothing else: the only listener is the gateway, which re-reads the goal under its
-- caller's identity (row-level security), so a notification for another tenant's goal reveals nothing to a caller.
-- LISTEN needs no privilege and pg_notify is executable by PUBLIC, so soorma_app may do both
-- (https://www.postgresql.org/docs/current/sql-notify.html).
create or replace function gateway.notify_goal_done() returns trigger
  language plpgsql as $$
begin
  perform pg_notify('soorma_goal_done', new.goal_id::text);
  return null;
end
$$;

create trigger goals_notify_done
  after update of status on gateway.goals
  for each row
  when (new.status in ('completed', 'failed', 'cancelled') and old.status is distinct from new.status)
  execute function gateway.notify_goal_done();
