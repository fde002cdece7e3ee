"""Tests of service/text: documents, casing, language, markup and alignment."""
