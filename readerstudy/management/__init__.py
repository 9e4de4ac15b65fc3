"""Management commands of the reader-study app."""
