"""The AWS side of durable timers and scheduled goals (:mod:`soorma.functions.shared.timers`): an EventBridge
Scheduler schedule group, the role EventBridge Scheduler assumes to invoke the gateway, and the gateway's right to
create one-time schedules in that group.

Every timer (a delayed event, a wait's timeout, a schedule's next run) is a row in PostgreSQL plus a one-time
schedule ``at(<due time>)`` with ``ActionAfterCompletion: DELETE`` that invokes the gateway with
``{"soorma_fire_timers": true}`` (:mod:`soorma.functions.scheduler.handler`). Nothing polls and nothing bills while
idle: EventBridge Scheduler charges per invocation (the first 14 million a month free,
https://aws.amazon.com/eventbridge/pricing/), a schedule group costs nothing, and the database is queried only when a
timer is due. The gateway reaches the scheduler API from the VPC over IPv6 through its dual-stack endpoint
``scheduler.<region>.api.aws`` (https://docs.aws.amazon.com/eventbridge/latest/userguide/dual-stack.html; the
functions' ``AWS_USE_DUALSTACK_ENDPOINT``), so no interface endpoint is needed.

Least privilege: the gateway may only ``scheduler:CreateSchedule`` in this group and pass only this role, only to
EventBridge Scheduler; the role may only invoke the gateway function, and only EventBridge Scheduler of this account
may assume it (``aws:SourceAccount``, the confused-deputy guard of
https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aws_cdk as cdk
from aws_cdk import aws_iam as iam, aws_lambda as lambda_, aws_scheduler as scheduler

from soorma.functions.shared import settings

if TYPE_CHECKING:
    from soorma.infra.platform import SoormaPlatform


def add_timer_scheduling(platform: "SoormaPlatform", gateway: lambda_.Function,
                         tracker: lambda_.Function) -> scheduler.CfnScheduleGroup:
    """Create the schedule group and the invoke role, and give ``gateway`` what it needs to arm and fire timers
    (its ``SOORMA_SCHEDULER_*`` settings and the two permissions above) and ``tracker`` what it needs to arm the timer
    of a wait that an event it records satisfies (the same permissions, targeting the gateway). Returns the schedule
    group."""
    from soorma.infra.platform import suppress

    stack = cdk.Stack.of(platform)
    group = scheduler.CfnScheduleGroup(platform, "TimerScheduleGroup")
    role = iam.Role(
        platform, "TimerSchedulerRole",
        description="EventBridge Scheduler invokes the gateway when a Soorma timer is due",
        assumed_by=iam.ServicePrincipal("scheduler.amazonaws.com",
                                        conditions={"StringEquals": {"aws:SourceAccount": stack.account}}),
    )
    # A Policy of its own, not the role's default one: the gateway's policy names the role, and the role's invoke
    # permission names the gateway, so inlining it in the role would make the two depend on each other.
    iam.Policy(platform, "TimerSchedulerInvoke", roles=[role], statements=[iam.PolicyStatement(
        actions=["lambda:InvokeFunction"], resources=[gateway.function_arn])])
    schedules_in_group = cdk.Arn.format(cdk.ArnComponents(
        service="scheduler", resource="schedule", resource_name=f"{group.ref}/*"), stack)
    # The gateway cannot name its own ARN in its environment (a circular reference): it gets the prefix, completed
    # at run time with its name (soorma.functions.shared.timers.arm); the tracker gets the gateway's ARN.
    targets = {gateway: cdk.Fn.sub("arn:${AWS::Partition}:lambda:${AWS::Region}:${AWS::AccountId}:function:"),
               tracker: gateway.function_arn}
    for fn, target in targets.items():
        fn.add_to_role_policy(iam.PolicyStatement(actions=["scheduler:CreateSchedule"],
                                                  resources=[schedules_in_group]))
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=["iam:PassRole"], resources=[role.role_arn],
            conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}))
        fn.add_environment(settings.SCHEDULER_TARGET_ARN.name, target)
        fn.add_environment(settings.SCHEDULER_ROLE_ARN.name, role.role_arn)
        fn.add_environment(settings.SCHEDULER_GROUP.name, group.ref)
        suppress(fn, ("AwsSolutions-IAM5", "scheduler:CreateSchedule is limited to the timers' own schedule group "
                      "(schedule/<group>/*): each timer is a one-time schedule named after its id, created at run "
                      "time, so no fixed name can be listed.",
                      [r"/^Resource::arn:<AWS::Partition>:scheduler:[^:]+:[^:]+:schedule/"
                       r"<[A-Za-z0-9]*TimerScheduleGroup[A-Za-z0-9]*>\/\*$/"]))
    return group


__all__ = ["add_timer_scheduling"]
