"""Everything SQL (nothing outside this package imports SQLAlchemy): tables, the store, reviews, API keys,
invites' single use, webhook endpoints and deliveries, migrations, and private files on disk.
"""
