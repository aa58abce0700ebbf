"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

A frozen snapshot: describe the tables as they are at this revision, never through tables.py.
"""

import sqlalchemy as sa
from alembic import context, op
${imports if imports else ""}
from candle_pipeline.warehouse.schema import SCHEMA_ATTRIBUTE

revision = ${repr(up_revision)}
down_revision = ${repr(down_revision)}
branch_labels = ${repr(branch_labels)}
depends_on = ${repr(depends_on)}


def upgrade() -> None:
    schema: str = context.config.attributes[SCHEMA_ATTRIBUTE]
    ${upgrades if upgrades else "raise NotImplementedError"}


def downgrade() -> None:
    schema: str = context.config.attributes[SCHEMA_ATTRIBUTE]
    ${downgrades if downgrades else "raise NotImplementedError"}
