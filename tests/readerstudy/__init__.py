"""Tests of the reader-study app."""
