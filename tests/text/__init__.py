"""Tests of service/text: documents, casing, language."""
