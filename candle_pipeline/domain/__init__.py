"""Pure domain logic on DataFrames: no Dagster, no database."""
