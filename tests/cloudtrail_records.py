"""CloudTrail records and log files built from CloudTrail's documented record schema.

Field names, nesting and values follow the AWS CloudTrail User Guide ("CloudTrail record contents",
"userIdentity element", the S3 and SageMaker Feature Store data-event examples): eventVersion 1.09/1.10 records
as a trail delivers them, in gzip JSON log files ``{"Records": [...]}`` named and placed as CloudTrail places them.
Used by the data_access tests and by bench/data_access.py."""

from __future__ import annotations

import gzip
import json
import uuid
from datetime import datetime
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"

BOTO3_AGENT = (
    "[Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.11.9 "
    "cfg/retry-mode#legacy Botocore/1.35.36]"
)
CLI_AGENT = (
    "[aws-cli/2.17.20 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 md/arch#arm64 lang/python#3.11.9 md/pyimpl#CPython "
    "cfg/retry-mode#standard md/installer#exe md/prompt#off md/command#s3.cp]"
)
CONSOLE_AGENT = (
    "[S3Console/0.4, aws-internal/3 aws-sdk-java/1.12.750 Linux/5.10.223 OpenJDK_64-Bit_Server_VM/25.412-b09 "
    "java/1.8.0_412 vendor/Oracle_Corporation cfg/retry-mode/standard]"
)


def role_session(role: str, session: str, account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "type": "AssumedRole",
        "principalId": f"AROA{role.upper()[:12]:X<16}:{session}",
        "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
        "accountId": account,
        "accessKeyId": "ASIAIOSFODNN7EXAMPLE",
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROA{role.upper()[:12]:X<16}",
                "arn": f"arn:aws:iam::{account}:role/{role}",
                "accountId": account,
                "userName": role,
            },
            "attributes": {"creationDate": "2026-11-30T09:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def sso_session(permission_set: str, user: str, account: str = ACCOUNT) -> dict[str, Any]:
    role = f"AWSReservedSSO_{permission_set}_0123456789abcdef"
    identity = role_session(role, user, account)
    identity["sessionContext"]["sessionIssuer"]["arn"] = (
        f"arn:aws:iam::{account}:role/aws-reserved/sso.amazonaws.com/eu-west-1/{role}"
    )
    return identity


def iam_user(name: str, account: str = ACCOUNT) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDAJ45Q7YFFAREXAMPLE",
        "arn": f"arn:aws:iam::{account}:user/{name}",
        "accountId": account,
        "accessKeyId": "AKIAIOSFODNN7EXAMPLE",
        "userName": name,
    }


def aws_service(service: str) -> dict[str, Any]:
    return {"type": "AWSService", "invokedBy": service}


def s3_data_event(
    name: str,
    bucket: str,
    key: str,
    identity: dict[str, Any],
    at: str,
    *,
    event_id: str | None = None,
    source_ip: str = "10.0.1.17",
    agent: str = BOTO3_AGENT,
    error_code: str | None = None,
) -> dict[str, Any]:
    """An S3 object-level data event (GetObject, PutObject, DeleteObject, ...)."""
    read_only = name in ("GetObject", "HeadObject", "GetObjectAttributes", "ListObjects", "ListObjectsV2")
    record: dict[str, Any] = {
        "eventVersion": "1.10",
        "userIdentity": identity,
        "eventTime": at,
        "eventSource": "s3.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": source_ip,
        "userAgent": agent,
        "requestParameters": {"bucketName": bucket, "Host": f"{bucket}.s3.{REGION}.amazonaws.com", "key": key},
        "responseElements": None,
        "additionalEventData": {
            "SignatureVersion": "SigV4",
            "CipherSuite": "TLS_AES_128_GCM_SHA256",
            "bytesTransferredIn": 0,
            "AuthenticationMethod": "AuthHeader",
            "x-amz-id-2": "EXAMPLE/x2ZXhhbXBsZQ==",
            "bytesTransferredOut": 1048576 if name == "GetObject" else 0,
        },
        "requestID": uuid.uuid4().hex[:16].upper(),
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": read_only,
        "resources": [
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
            {"accountId": ACCOUNT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"},
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Data",
        "tlsDetails": {
            "tlsVersion": "TLSv1.3",
            "cipherSuite": "TLS_AES_128_GCM_SHA256",
            "clientProvidedHostHeader": f"{bucket}.s3.{REGION}.amazonaws.com",
        },
    }
    if error_code:
        record["errorCode"] = error_code
        record["errorMessage"] = "Access Denied"
    return record


def feature_store_event(
    name: str, group: str, identity: dict[str, Any], at: str, *, event_id: str | None = None
) -> dict[str, Any]:
    """A SageMaker Feature Store runtime data event (GetRecord, PutRecord, DeleteRecord, BatchGetRecord)."""
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": at,
        "eventSource": "sagemaker.amazonaws.com",
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": "10.0.2.40",
        "userAgent": BOTO3_AGENT,
        "requestParameters": {"featureGroupName": group},
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": name in ("GetRecord", "BatchGetRecord"),
        "resources": [
            {
                "accountId": ACCOUNT,
                "type": "AWS::SageMaker::FeatureGroup",
                "ARN": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:feature-group/{group}",
            }
        ],
        "eventType": "AwsApiCall",
        "managementEvent": False,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Data",
    }


def management_event(
    source: str, name: str, identity: dict[str, Any], at: str, request: dict[str, Any], *, event_id: str | None = None
) -> dict[str, Any]:
    """A management event (DeleteFeatureGroup, PutBucketPolicy, ...), as in a log file or LookupEvents'
    ``CloudTrailEvent``."""
    return {
        "eventVersion": "1.09",
        "userIdentity": identity,
        "eventTime": at,
        "eventSource": source,
        "eventName": name,
        "awsRegion": REGION,
        "sourceIPAddress": "203.0.113.12",
        "userAgent": CLI_AGENT,
        "requestParameters": request,
        "responseElements": None,
        "requestID": str(uuid.uuid4()),
        "eventID": event_id or str(uuid.uuid4()),
        "readOnly": name.startswith(("Get", "Describe", "List")),
        "eventType": "AwsApiCall",
        "managementEvent": True,
        "recipientAccountId": ACCOUNT,
        "eventCategory": "Management",
    }


def log_file_key(delivered: datetime, prefix: str = "", account: str = ACCOUNT, region: str = REGION) -> str:
    root = f"{prefix}/AWSLogs" if prefix else "AWSLogs"
    return (
        f"{root}/{account}/CloudTrail/{region}/{delivered:%Y/%m/%d}/"
        f"{account}_CloudTrail_{region}_{delivered:%Y%m%dT%H%MZ}_{uuid.uuid4().hex[:16]}.json.gz"
    )


def digest_file_key(delivered: datetime, prefix: str = "", account: str = ACCOUNT, region: str = REGION) -> str:
    root = f"{prefix}/AWSLogs" if prefix else "AWSLogs"
    return (
        f"{root}/{account}/CloudTrail-Digest/{region}/{delivered:%Y/%m/%d}/"
        f"{account}_CloudTrail-Digest_{region}_trail_{region}_{delivered:%Y%m%dT%H%M%SZ}.json.gz"
    )


def log_file(records: list[dict[str, Any]]) -> bytes:
    return gzip.compress(json.dumps({"Records": records}, separators=(",", ":")).encode())
