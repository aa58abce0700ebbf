-- The Dagster instance (runs, events, schedules) gets its own database next to the warehouse.
CREATE DATABASE dagster OWNER candle;
