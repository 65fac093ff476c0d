"""IAM collection of an account with 1,000 users and 1,000 roles: the aws connector next to bare boto3.

Starts its own moto server on a free loopback port, seeds it, then alternates the two ways of reading
the same data (caller identity, credential report, every page of the authorization details, the
password policy) and prints the medians and their ratio. Run: ``python bench/aws_collect.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import requests
from botocore.exceptions import ClientError

from collector.canonical import content_sha256
from collector.connector import CollectContext
from connectors.aws import AwsConnector, AwsSettings
from connectors.aws.iam import fetch_authorization_details, parse_credential_report

USERS = 1000
ROLES = 1000
ROUNDS = 7
REGION = "us-east-1"
SAGEMAKER = {"Service": "sagemaker.amazonaws.com"}
TRUST = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": SAGEMAKER, "Action": "sts:AssumeRole"}]}
)
READ = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
)


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            return process, url
        except requests.ConnectionError:
            time.sleep(0.1)
    raise RuntimeError("moto_server did not start")


def seed(iam: Any) -> None:
    policy = iam.create_policy(PolicyName="ModelRead", PolicyDocument=READ)["Policy"]["Arn"]
    for i in range(USERS):
        iam.create_user(UserName=f"user-{i:04d}")
        if i % 2 == 0:
            iam.create_access_key(UserName=f"user-{i:04d}")
        if i % 10 == 0:
            iam.attach_user_policy(UserName=f"user-{i:04d}", PolicyArn=policy)
    for i in range(ROLES):
        iam.create_role(RoleName=f"role-{i:04d}", AssumeRolePolicyDocument=TRUST)
        if i % 4 == 0:
            iam.put_role_policy(RoleName=f"role-{i:04d}", PolicyName="read", PolicyDocument=READ)
    iam.update_account_password_policy(MinimumPasswordLength=14, PasswordReusePrevention=24)


def bare(url: str) -> int:
    """The same calls with boto3 alone, results kept in memory, nothing parsed or normalised."""
    kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": REGION}
    boto3.client("sts", **kwargs).get_caller_identity()
    iam = boto3.client("iam", **kwargs)
    while iam.generate_credential_report()["State"] != "COMPLETE":
        time.sleep(0.05)
    report = iam.get_credential_report()["Content"]
    pages = list(iam.get_paginator("get_account_authorization_details").paginate())
    with contextlib.suppress(ClientError):
        iam.get_account_password_policy()
    return len(report) + len(pages)


def through_connector(url: str, hash_payloads: bool = False) -> int:
    settings = AwsSettings(endpoint_url=url, ecr={"enabled": False}, credential_report_poll="0.05s")
    ctx = CollectContext(instance="bench", run_id="bench", now=datetime.now(UTC))
    observations = list(AwsConnector(settings).collect(ctx))
    if ctx.problems:
        raise RuntimeError(f"problems: {ctx.problems}")
    if hash_payloads:
        for observation in observations:
            content_sha256(observation.payload)
    return len(observations)


class _Recorded:
    """Pages already fetched, served again so the connector's own work can be timed without the network."""

    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages = pages

    def get_paginator(self, name: str) -> _Recorded:
        return self

    def paginate(self) -> list[dict[str, Any]]:
        return self.pages


def own_work_seconds(url: str) -> tuple[float, float]:
    """CPU time of the connector's parsing and reshaping alone: credential-report CSV, authorization details."""
    iam = boto3.client("iam", endpoint_url=url, region_name=REGION)
    content = iam.get_credential_report()["Content"]
    pages = list(iam.get_paginator("get_account_authorization_details").paginate())
    csv_seconds = min(timed(lambda: len(parse_credential_report(content)[0])) for _ in range(5))
    details_seconds = min(timed(lambda: len(fetch_authorization_details(_Recorded(pages)))) for _ in range(5))
    return csv_seconds, details_seconds


def timed(fn: Callable[[], int]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION=REGION)
    process, url = start_moto()
    try:
        t0 = time.perf_counter()
        seed(boto3.client("iam", endpoint_url=url, region_name=REGION))
        print(f"seeded {USERS} users and {ROLES} roles in {time.perf_counter() - t0:.1f}s")
        bare(url)
        through_connector(url)  # warm-up: the first report generation, imports, connection pools
        runs: dict[str, list[float]] = {"bare boto3": [], "connector": [], "connector + sha256": []}
        for _ in range(ROUNDS):
            runs["bare boto3"].append(timed(lambda: bare(url)))
            runs["connector"].append(timed(lambda: through_connector(url)))
            runs["connector + sha256"].append(timed(lambda: through_connector(url, hash_payloads=True)))
        csv_seconds, details_seconds = own_work_seconds(url)
        print(
            f"connector's own work: credential report parse {csv_seconds:.3f}s, "
            f"authorization details {details_seconds:.3f}s"
        )
        baseline = statistics.median(runs["bare boto3"])
        print(f"{'way':<20} {'median s':>9} {'min s':>7} {'max s':>7} {'ratio':>6}  ({ROUNDS} rounds)")
        for name, seconds in runs.items():
            median = statistics.median(seconds)
            print(f"{name:<20} {median:9.3f} {min(seconds):7.3f} {max(seconds):7.3f} {median / baseline:6.2f}x")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


if __name__ == "__main__":
    main()
