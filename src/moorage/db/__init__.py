"""Metadata: SQLAlchemy tables and the one interface the core uses to reach them."""
