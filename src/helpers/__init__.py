"""A thin, tested library for the replication book (task -> models -> runs -> analyses -> figures)."""
