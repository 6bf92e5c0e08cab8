"""repository visibility inherits the namespace's (NULL = inherit)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 09:00:00.000000

Repositories used to copy their namespace's visibility when created, so making a namespace
private left its older repositories public. From here a repository's own visibility is
NULL unless set on the repository, and the namespace's applies.

Existing rows cannot tell a visibility set on purpose from one copied at creation. The
conversion therefore never lets a later namespace change expose more than before: only a
public repository of a public namespace starts inheriting (making the namespace private
now hides it, which is the point); every private repository stays private on its own (a
namespace made public later does not publish it: reset it with
`moorage repo update NAME --inherit-visibility`), and a public repository of a private
namespace stays public on its own.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.alter_column('visibility', existing_type=sa.String(length=16), nullable=True)
    op.execute("UPDATE repositories SET visibility = NULL WHERE visibility = 'public' AND "
               "namespace_id IN (SELECT id FROM namespaces WHERE visibility = 'public')")


def downgrade() -> None:
    op.execute("UPDATE repositories SET visibility = (SELECT n.visibility FROM namespaces n "
               "WHERE n.id = repositories.namespace_id) WHERE visibility IS NULL")
    with op.batch_alter_table('repositories', schema=None) as batch_op:
        batch_op.alter_column('visibility', existing_type=sa.String(length=16), nullable=False)
