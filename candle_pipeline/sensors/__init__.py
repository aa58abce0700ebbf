"""Sensors: watch-list changes become partitions and backfills; failures become alerts."""
