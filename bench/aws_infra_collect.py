"""The aws connector with infrastructure evidence on a seeded account, next to bare boto3 making the same calls.

Seeds its own moto server: USERS users and ROLES roles (one in ten users may pass roles and create functions),
200 buckets, 100 KMS keys, 50 security groups. Round by round it runs the connector (IAM + infrastructure, scope
``all``) while recording every API call it makes (operation and parameters), then replays exactly those calls with
bare boto3 clients, and prints the medians, their ratio, the time of the privilege-escalation check on the
collected authorization details, and the process's peak RSS.
Run: ``python bench/aws_infra_collect.py [USERS] [ROLES]`` (default 1000 1000).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
from botocore import xform_name
from botocore.exceptions import ClientError
from botocore.session import get_session

from collector.connector import CollectContext
from connectors.aws import NO_PRIVILEGE_ESCALATION, AwsConnector, AwsSettings

sys.path.insert(0, str(Path(__file__).parent))
from aws_collect import start_moto

ROUNDS = 3
REGION = "us-east-1"
LAMBDA_TRUST = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]})  # fmt: skip
PASS_AND_CREATE = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": ["iam:PassRole", "lambda:CreateFunction"], "Resource": "*"}]})  # fmt: skip
READ = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:Get*", "Resource": "*"}]})


def seed(url: str, users: int, roles: int) -> None:
    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=url, region_name=REGION)  # type: ignore[call-overload]

    iam = client("iam")
    for i in range(users):
        iam.create_user(UserName=f"user-{i}")
        iam.put_user_policy(
            UserName=f"user-{i}", PolicyName="p", PolicyDocument=PASS_AND_CREATE if i % 10 == 0 else READ
        )
    for i in range(roles):
        iam.create_role(RoleName=f"role-{i}", AssumeRolePolicyDocument=LAMBDA_TRUST)
    s3 = client("s3")
    for i in range(200):
        s3.create_bucket(Bucket=f"bucket-{i:03d}")
        if i % 2:
            s3.put_bucket_versioning(Bucket=f"bucket-{i:03d}", VersioningConfiguration={"Status": "Enabled"})
    kms = client("kms")
    for i in range(100):
        key = kms.create_key()["KeyMetadata"]["KeyId"]
        if i % 2:
            kms.enable_key_rotation(KeyId=key)
    ec2 = client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    for i in range(50):
        group = ec2.create_security_group(GroupName=f"sg-{i}", Description="bench", VpcId=vpc)["GroupId"]
        ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
            {"IpProtocol": "tcp", "FromPort": 22 if i % 5 == 0 else 443, "ToPort": 22 if i % 5 == 0 else 443,
             "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])  # fmt: skip


def connector_run(url: str, calls: list[tuple[str, str, dict[str, Any]]]) -> tuple[float, Any]:
    session = get_session()

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.service_model.service_name, model.name, dict(params)))

    session.register("provide-client-params", record)
    settings = AwsSettings.model_validate({
        "endpoint_url": url, "regions": [REGION], "ecr": {"enabled": False}, "credential_report_poll": "0.05s",
        "infrastructure": {"enabled": True, "scope": "all", "skip_kinds": ["aws.guardduty.detectors"]}})  # fmt: skip
    ctx = CollectContext(instance="bench", run_id="r", now=datetime.now(UTC))
    start = time.perf_counter()
    found = list(AwsConnector(settings, session=session).collect(ctx))
    elapsed = time.perf_counter() - start
    details = next(o for o in found if o.kind == "aws.iam.authorization_details")
    return elapsed, details


def bare_run(url: str, calls: list[tuple[str, str, dict[str, Any]]]) -> float:
    start = time.perf_counter()
    clients: dict[str, Any] = {}
    for service, operation, params in calls:
        if service not in clients:
            clients[service] = boto3.client(service, endpoint_url=url, region_name=REGION)  # type: ignore[call-overload]
        client = clients[service]
        if service == "s3control":
            client.meta.events.register("before-send.s3-control", _strip_account_host)
        with contextlib.suppress(ClientError):  # the connector handles these too (no password policy, ...)
            getattr(client, xform_name(operation))(**params)
    return time.perf_counter() - start


def _strip_account_host(request: Any, **_: Any) -> None:
    request.url = re.sub(r"^(https?://)\d{12}\.", r"\1", request.url)


def main() -> None:
    users = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    roles = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    credentials = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION}
    for name, value in credentials.items():
        os.environ.setdefault(name, value)
    process, url = start_moto()
    try:
        start = time.perf_counter()
        seed(url, users, roles)
        print(
            f"seeded {users} users, {roles} roles, 200 buckets, 100 keys, 50 groups "
            f"in {time.perf_counter() - start:.1f} s"
        )
        ours, bare, judged = [], [], []
        for round_ in range(ROUNDS + 1):
            calls: list[tuple[str, str, dict[str, Any]]] = []
            elapsed, details = connector_run(url, calls)
            replay = bare_run(url, calls)
            start = time.perf_counter()
            result = NO_PRIVILEGE_ESCALATION.evaluate(details, AwsSettings(), datetime.now(UTC))
            check = time.perf_counter() - start
            if round_ == 0:
                print(f"warm-up: {len(calls)} calls; escalation check: {result.result.value}, "
                      f"{len(result.details['failing'])} principals with a path")  # fmt: skip
                continue
            ours.append(elapsed)
            bare.append(replay)
            judged.append(check)
        o, b = statistics.median(ours), statistics.median(bare)
        print(f"bare boto3 (same calls) median {b:.3f} s; connector median {o:.3f} s; ratio {o / b:.2f}x")
        print(f"privilege-escalation check median {statistics.median(judged):.3f} s")
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB (this process)")
    finally:
        os.killpg(process.pid, signal.SIGTERM)


if __name__ == "__main__":
    main()
