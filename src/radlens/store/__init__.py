"""Storage of received instances, studies and analysis jobs (SQLAlchemy 2 + Alembic).

``db`` opens the database and migrates it, ``models`` is the schema, ``files`` writes
instance files durably, ``intake`` receives instances, ``jobs`` is the persistent queue.
"""
