"""Schema revisions, oldest first by ``down_revision``. Add one per change; never edit one that has shipped."""
