-- A goal whose event is dead-lettered ends 'failed' with the reason, and is revived when the dead letter is replayed
-- (docs/architecture.md, "Delivery semantics"; soorma.goal_notices). dead_letters: the ids of the goal's dead letters
-- not replayed yet; failed_by_dead_letter: the goal's failure came from a dead letter (only such a failure is undone
-- by a replay, or by the goal's result arriving later; a failure the agents reported stays).
alter table gateway.goals add column dead_letters text[] not null default '{}';
alter table gateway.goals add column failed_by_dead_letter boolean not null default false;
