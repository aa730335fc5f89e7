-- Goals: a 'pending' status (issue 12, finding 4). A goal is recorded 'pending' and becomes 'running' only once its
-- action request's publish was acknowledged by the event bus; a publish that was not acknowledged leaves it
-- 'pending' (the client retries with the same Idempotency-Key, which republishes the same envelope), never 'failed'.
-- The tracker completes 'pending' goals too (the publish may have been stored with its ack lost) and marks one
-- 'running' when it records the goal's own request event.
alter table gateway.goals drop constraint goals_status_check;
alter table gateway.goals add constraint goals_status_check
  check (status in ('pending', 'running', 'completed', 'failed', 'cancelled'));
