//! In-memory reference model of a partition hierarchy (filled in by the foundation issue).
