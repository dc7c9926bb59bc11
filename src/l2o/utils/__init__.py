"""Helpers below every other layer: atomic files and readers with one-line errors, process settings."""
