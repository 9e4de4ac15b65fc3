"""Labelling: assignments, agreement, adjudication, label exchange and provenance."""
