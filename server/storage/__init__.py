"""Everything SQL: tables, the store, reviews, migrations and private files on disk."""
