"""Everything SQL (nothing outside this package imports SQLAlchemy): tables, one repository per aggregate composed
into the Store, typed records, the review / API key / webhook stores, migrations, and private files on disk.
"""
