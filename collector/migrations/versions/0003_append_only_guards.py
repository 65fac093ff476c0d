"""append-only guards: triggers refuse UPDATE and DELETE on evidence, its content and run history

Revision ID: 0003
Revises: 0002

The one sanctioned delete is the archive (retention), which lifts the guard inside its own transaction:
PostgreSQL ``SET LOCAL evidence_collector.allow_delete = 'on'``, SQLite a row in ``append_only_bypass`` removed
before the commit. ``collector.store.guards.archive_deletes`` does either.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

GUARDED = ("evidence", "evidence_content", "collection_runs")

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION evidence_collector_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF coalesce(current_setting('evidence_collector.allow_delete', true), '') = 'on' THEN
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
  END IF;
  RAISE EXCEPTION 'evidence store is append-only: % on % refused (only the archive deletes, after SET LOCAL '
    'evidence_collector.allow_delete = on)', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$
"""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in GUARDED:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION evidence_collector_append_only()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION evidence_collector_append_only()"
            )
        return
    op.create_table(
        "append_only_bypass",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("reason", sa.Text(), nullable=False),
    )
    for table in GUARDED:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                "WHEN NOT EXISTS (SELECT 1 FROM append_only_bypass) BEGIN "
                f"SELECT RAISE(ABORT, 'evidence store is append-only: {operation} on {table} refused "
                "(only the archive deletes, through append_only_bypass)'); END"
            )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in GUARDED:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS evidence_collector_append_only()")
        return
    for table in GUARDED:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
    op.drop_table("append_only_bypass")
