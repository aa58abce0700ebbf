"""The Postgres warehouse: table definitions and partition-exact bulk reads and writes."""
