"""An application load balancer on moto: a listener forwarding to a target group, and a look at
its default actions, for the maintenance-mode tests."""

from __future__ import annotations

from typing import Any

from tests.testbed.aws import Aws


def make_listener(aws: Aws, with_rule: bool = False) -> dict[str, str]:
    """VPC, two subnets, an ALB, target groups `api` and `spare`, an HTTP listener to `api`."""
    ec2, elb = aws.client("ec2"), aws.client("elbv2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = []
    for i, zone in ((1, "a"), (2, "b")):
        cidr, az = f"10.0.{i}.0/24", f"{aws.region}{zone}"
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock=cidr, AvailabilityZone=az)["Subnet"]
        subnets.append(subnet["SubnetId"])
    lb = elb.create_load_balancer(Name="web", Subnets=subnets)["LoadBalancers"][0]
    groups = {
        name: elb.create_target_group(Name=name, Protocol="HTTP", Port=80, VpcId=vpc)[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for name in ("api", "spare")
    }
    listener = elb.create_listener(
        LoadBalancerArn=lb["LoadBalancerArn"],
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["api"]}],
    )["Listeners"][0]["ListenerArn"]
    if with_rule:
        elb.create_rule(
            ListenerArn=listener,
            Priority=10,
            Conditions=[{"Field": "path-pattern", "Values": ["/ws/*"]}],
            Actions=[{"Type": "forward", "TargetGroupArn": groups["spare"]}],
        )
    return {"listener": listener, **groups}


def actions(aws: Aws, listener: str) -> list[dict[str, Any]]:
    found = aws.client("elbv2").describe_listeners(ListenerArns=[listener])
    return found["Listeners"][0]["DefaultActions"]
