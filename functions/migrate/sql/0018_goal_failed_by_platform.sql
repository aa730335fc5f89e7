-- failed_by_dead_letter becomes failed_by_platform: the goal's failure was the platform's, not the agents' — a dead
-- letter (0017), or, for a goal submitted without an Idempotency-Key, a publish the event bus did not acknowledge
-- (its client cannot retry it, so it must not stay 'pending'; issue 12, finding 4). Only such a failure is undone by
-- evidence that the goal is alive after all: its own request recorded from the bus (the acknowledgement was lost,
-- not the publish), its result, or a replay that leaves none of its dead letters (soorma.functions.tracker.recording).
alter table gateway.goals rename column failed_by_dead_letter to failed_by_platform;
