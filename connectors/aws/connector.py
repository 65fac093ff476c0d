"""The ``aws`` connector: per account, IAM evidence (global) and ECR image scans (per region)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError
from botocore.loaders import Loader, create_loader
from botocore.session import Session, get_session

from collector.sdk import CollectContext, ConfigurationError, Connector, Observation, SkippableError, Subject
from collector.sdk.vulnerability_scan import KIND as CONTAINER_SCAN_KIND
from collector.sdk.vulnerability_scan import to_payload

from . import ecr as ecr_reads
from .checks import CONTAINER_SCAN_CHECKS, IAM_CHECKS
from .iam import (
    AUTHORIZATION_DETAILS_KIND,
    CREDENTIAL_REPORT_KIND,
    PASSWORD_POLICY_KIND,
    CredentialReportError,
    fetch_authorization_details,
    fetch_credential_report,
    fetch_password_policy,
    parse_credential_report,
)
from .infra import ACCOUNT_READERS, INFRA_KINDS, REGION_READERS, Reader, Scope
from .infra_checks import INFRA_CHECKS
from .settings import AccountTarget, AwsSettings
from .shapes import error_code, error_message, is_access_denied, permission_for

__all__ = ["AwsConnector"]

_SESSION_NAME = "evidence-collector"
_GLOBAL_REGION = "us-east-1"


@dataclass(frozen=True)
class _Account:
    id: str
    credentials: dict[str, str] = field(default_factory=dict, repr=False)
    """Temporary credentials from AssumeRole; empty means the session's own."""


@cache
def _shared_loader() -> Loader:
    """Service models and endpoint rules, parsed once per process rather than once per run."""
    return create_loader()


def _default_session() -> Session:
    """A fresh botocore session (the default credential chain, read anew each run) over the shared loader."""
    session = get_session()
    session.register_component("data_loader", _shared_loader())
    return session


class _Clients:
    """Every client comes from one botocore session, so event hooks registered on it see every call."""

    def __init__(self, session: Session, settings: AwsSettings) -> None:
        self.session = session
        self.settings = settings
        self.config = Config(
            retries={"mode": settings.retry_mode, "max_attempts": settings.max_attempts},
            user_agent_extra="evidence-collector",
        )

    def _session_region(self) -> str | None:
        region = self.session.get_config_variable("region")
        return str(region) if region else None

    def regions(self) -> list[str]:
        if self.settings.regions:
            return list(self.settings.regions)
        region = self._session_region()
        if region:
            return [region]
        raise ConfigurationError("no AWS region: set `regions` in the aws settings or AWS_REGION in the environment")

    def _home_region(self) -> str:
        configured = self.settings.regions[0] if self.settings.regions else None
        return configured or self._session_region() or _GLOBAL_REGION

    def client(self, service: str, account: _Account | None, region: str | None = None) -> Any:
        credentials = account.credentials if account else {}
        client = self._create(service, account, region, credentials)
        if self.settings.endpoint_url and service == "s3control":
            client.meta.events.register("before-send.s3-control", _without_account_host)
        return client

    def _create(self, service: str, account: _Account | None, region: str | None, credentials: dict[str, str]) -> Any:
        return self.session.create_client(
            service,
            region_name=region or self._home_region(),
            endpoint_url=self.settings.endpoint_url,
            config=self.config,
            aws_access_key_id=credentials.get("aws_access_key_id"),
            aws_secret_access_key=credentials.get("aws_secret_access_key"),
            aws_session_token=credentials.get("aws_session_token"),
        )


def _without_account_host(request: Any, **_: Any) -> None:
    """S3 Control's endpoint rules put the account id before the host; a test endpoint (moto) has no such host."""
    request.url = re.sub(r"^(https?://)\d{12}\.", r"\1", request.url)


def _no_credentials(exc: BaseException) -> ConfigurationError:
    return ConfigurationError(
        f"no usable AWS credentials ({type(exc).__name__}: {exc}); boto3's default chain looks at the environment, "
        "the shared config/profile, and web identity (IRSA)"
    )


class AwsConnector(Connector[AwsSettings]):
    """IAM credential report, authorization details and password policy; ECR scan findings."""

    type = "aws"
    version = "0.1.0"
    Settings = AwsSettings
    kinds = (
        frozenset({CREDENTIAL_REPORT_KIND, AUTHORIZATION_DETAILS_KIND, PASSWORD_POLICY_KIND, CONTAINER_SCAN_KIND})
        | INFRA_KINDS
    )
    checks = IAM_CHECKS + INFRA_CHECKS + CONTAINER_SCAN_CHECKS

    def __init__(self, settings: AwsSettings, session: Session | None = None) -> None:
        super().__init__(settings)
        self._session = session

    def produced_kinds(self) -> frozenset[str]:
        infrastructure = self.settings.infrastructure
        left_out = set() if self.settings.ecr.enabled else {CONTAINER_SCAN_KIND}
        left_out |= set(infrastructure.skip_kinds) if infrastructure.enabled else set(INFRA_KINDS)
        return self.kinds - left_out

    def collect(self, ctx: CollectContext) -> Iterator[Observation]:
        clients = _Clients(self._session or _default_session(), self.settings)
        infrastructure = self.settings.infrastructure.enabled
        regions = clients.regions() if self.settings.ecr.enabled or infrastructure else []
        for account in self._accounts(clients, ctx):
            ctx.raise_if_cancelled()
            yield from self._iam(clients, account, ctx)
            for index, region in enumerate(regions):
                if self.settings.ecr.enabled:
                    yield from self._ecr(clients, account, region, ctx)
                if infrastructure:
                    yield from self._infrastructure(clients, account, region, index == 0, ctx)

    # -- accounts ---------------------------------------------------------------------------------

    def _accounts(self, clients: _Clients, ctx: CollectContext) -> Iterator[_Account]:
        sts = clients.client("sts", None)
        if not self.settings.accounts:
            try:
                identity = sts.get_caller_identity()
            except (NoCredentialsError, NoRegionError) as exc:
                raise _no_credentials(exc) from exc
            yield _Account(str(identity["Account"]))
            return
        for target in self.settings.accounts:
            account = self._assume(sts, target, ctx)
            if account is not None:
                yield account

    def _assume(self, sts: Any, target: AccountTarget, ctx: CollectContext) -> _Account | None:
        extra = {"ExternalId": target.external_id} if target.external_id else {}
        try:
            response = sts.assume_role(RoleArn=target.role_arn, RoleSessionName=_SESSION_NAME, **extra)
        except NoCredentialsError as exc:
            raise _no_credentials(exc) from exc
        except ClientError as exc:
            reason = f"sts:AssumeRole on {target.role_arn} failed ({error_code(exc)}): {error_message(exc)}"
            ctx.problem(f"aws://{target.id}", reason + "; this account is skipped")
            return None
        credentials = response["Credentials"]
        return _Account(
            target.id,
            {
                "aws_access_key_id": credentials["AccessKeyId"],
                "aws_secret_access_key": credentials["SecretAccessKey"],
                "aws_session_token": credentials["SessionToken"],
            },
        )

    # -- IAM --------------------------------------------------------------------------------------

    def _iam(self, clients: _Clients, account: _Account, ctx: CollectContext) -> Iterator[Observation]:
        iam = clients.client("iam", account)
        subject = Subject("aws_account", account.id)
        yield self._part(ctx, subject, CREDENTIAL_REPORT_KIND, lambda: self._credential_report(iam, account, ctx))
        yield self._part(
            ctx,
            subject,
            AUTHORIZATION_DETAILS_KIND,
            lambda: ({"account_id": account.id, **fetch_authorization_details(iam)}, ctx.now),
        )
        yield self._part(
            ctx,
            subject,
            PASSWORD_POLICY_KIND,
            lambda: ({"account_id": account.id, **fetch_password_policy(iam)}, ctx.now),
        )

    def _credential_report(self, iam: Any, account: _Account, ctx: CollectContext) -> tuple[dict[str, Any], datetime]:
        def wait(seconds: float) -> None:
            ctx.cancel_event.wait(seconds)
            ctx.raise_if_cancelled()

        settings = self.settings
        content, generated_at = fetch_credential_report(
            iam, settings.credential_report_poll, settings.credential_report_timeout, wait
        )
        source = f"aws://{account.id}/iam/credential-report"
        try:
            principals, problems = parse_credential_report(content)
        except CredentialReportError as exc:
            raise SkippableError(source, str(exc)) from None
        for problem in problems:
            ctx.problem(source, problem)
        payload = {"account_id": account.id, "generated_at": generated_at.isoformat(), "principals": principals}
        return payload, generated_at

    def _part(
        self,
        ctx: CollectContext,
        subject: Subject,
        kind: str,
        read: Callable[[], tuple[dict[str, Any], datetime]],
    ) -> Observation:
        """One piece of evidence; a denied call or unreadable data yields it marked ``error`` instead."""
        source = f"aws://{subject.id}/{kind}"
        try:
            payload, observed_at = read()
        except ClientError as exc:
            if not is_access_denied(exc):
                raise
            error = {
                "code": error_code(exc),
                "permission": permission_for("iam", exc),
                "message": error_message(exc),
            }
        except SkippableError as exc:
            error = {"code": "Unreadable", "permission": "", "message": exc.reason}
        else:
            return Observation(kind=kind, subject=subject, observed_at=observed_at, payload=payload, source=source)
        ctx.problem(source, f"{error['permission'] or kind}: {error['code']}: {error['message']}")
        return Observation(
            kind=kind,
            subject=subject,
            observed_at=ctx.now,
            payload={"account_id": subject.id, "error": error},
            source=source,
        )

    # -- infrastructure ---------------------------------------------------------------------------

    def _infrastructure(
        self, clients: _Clients, account: _Account, region: str, first: bool, ctx: CollectContext
    ) -> Iterator[Observation]:
        settings = self.settings.infrastructure
        made: dict[str, Any] = {}

        def client_for(service: str) -> Any:
            if service not in made:
                made[service] = clients.client(service, account, region)
            return made[service]

        readers = (ACCOUNT_READERS if first else ()) + REGION_READERS
        for reader in readers:
            if reader.kind in settings.skip_kinds:
                continue
            ctx.raise_if_cancelled()
            regional = reader in REGION_READERS
            subject = (
                Subject("aws_region", f"{account.id}/{region}") if regional else Subject("aws_account", account.id)
            )
            yield self._infrastructure_part(ctx, subject, reader, Scope(account.id, region, client_for))

    def _infrastructure_part(
        self,
        ctx: CollectContext,
        subject: Subject,
        reader: Reader,
        scope: Scope,
    ) -> Observation:
        """Any error AWS returns (denied, not subscribed, not available in the region) marks this one piece
        ``error``, naming the call; the other pieces proceed."""
        source = f"aws://{subject.id}/{reader.kind}"
        where = {"account_id": scope.account_id, "region": scope.region}
        try:
            payload = {**where, **reader.read(scope, self.settings.infrastructure)}
        except ClientError as exc:
            error = {"code": error_code(exc), "permission": permission_for(reader.service, exc),
                     "message": error_message(exc)}  # fmt: skip
            ctx.problem(source, f"{error['permission']}: {error['code']}: {error['message']}")
            payload = {**where, "error": error}
        return Observation(kind=reader.kind, subject=subject, observed_at=ctx.now, payload=payload, source=source)

    # -- ECR --------------------------------------------------------------------------------------

    def _ecr(self, clients: _Clients, account: _Account, region: str, ctx: CollectContext) -> Iterator[Observation]:
        ecr = clients.client("ecr", account, region)
        where = f"aws://{account.id}/{region}/ecr"
        try:
            for repository in ecr_reads.repositories(ecr):
                for image in ecr_reads.selected_images(ecr, repository, self.settings.ecr, ctx.now):
                    ctx.raise_if_cancelled()
                    observation = self._image_scan(ecr, image, ctx)
                    if observation is not None:
                        yield observation
        except ClientError as exc:
            if not is_access_denied(exc):
                raise
            permission = permission_for("ecr", exc)
            ctx.problem(where, f"{permission} denied ({error_code(exc)}): no more image scans from {region}")

    def _image_scan(self, ecr: Any, image: ecr_reads.EcrImage, ctx: CollectContext) -> Observation | None:
        try:
            scan = ecr_reads.to_scanned_artifact(image, ecr_reads.image_scan(ecr, image))
        except SkippableError as exc:
            ctx.problem(exc.source, exc.reason)
            return None
        source = f"ecr://{image.registry_id}/{image.repository_name}@{image.digest}"
        if scan.time_error:
            ctx.problem(source, f"{scan.time_error}: recorded with the collection time, recency is an error")
        return Observation(
            kind=CONTAINER_SCAN_KIND,
            subject=scan.subject,
            observed_at=scan.scanned_at or ctx.now,
            payload=to_payload(scan, observed_at_source="report" if scan.scanned_at else "collected"),
            source=source,
        )
