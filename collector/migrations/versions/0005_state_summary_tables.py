"""state summary tables: latest record per subject, record and run counters (filled from the stored rows)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from collector.store import summary

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "evidence_latest",
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("subject_type", sa.String(length=100), nullable=False),
        sa.Column("subject_id", sa.String(length=1000), nullable=False),
        sa.Column("latest_seq", _SEQ, nullable=False),
        sa.Column("latest_fresh_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("counted_seq", _SEQ, nullable=True),
        sa.Column("counted_fresh_from", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("kind", "subject_type", "subject_id", name=op.f("pk_evidence_latest")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "evidence_counts",
        sa.Column("connector_type", sa.String(length=100), nullable=False),
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=100), nullable=False),
        sa.Column("records", _SEQ, nullable=False),
        sa.PrimaryKeyConstraint("connector_type", "instance", "kind", name=op.f("pk_evidence_counts")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "run_counts",
        sa.Column("connector_type", sa.String(length=100), nullable=False),
        sa.Column("instance", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("runs", _SEQ, nullable=False),
        sa.Column("problems", _SEQ, nullable=False),
        sa.PrimaryKeyConstraint("connector_type", "instance", "status", name=op.f("pk_run_counts")),
        sqlite_with_rowid=False,
    )
    # existing stores: one pass over the stored rows, in this migration's transaction
    bind = op.get_bind()
    summary.rebuild(bind, bind.dialect.name)


def downgrade() -> None:
    op.drop_table("run_counts")
    op.drop_table("evidence_counts")
    op.drop_table("evidence_latest")
