"""Timers and scheduled goals: the schedules API (:mod:`.schedules`), the EventBridge expression evaluator (:mod:`.expressions`) and the AWS firing function (:mod:`.handler`)."""
