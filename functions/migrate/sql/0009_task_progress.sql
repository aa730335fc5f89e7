-- Task progress (TaskContext.report_progress publishes task.progress on task-events): the tracker keeps the latest
-- report per task so GET /v1/goals/{id} shows it. progress_at orders reports that arrive out of order.
alter table gateway.goal_tasks add column if not exists progress double precision;
alter table gateway.goal_tasks add column if not exists progress_message text;
alter table gateway.goal_tasks add column if not exists progress_at timestamptz;
