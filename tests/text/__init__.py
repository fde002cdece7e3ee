"""Tests of the text handling of the service: markup, alignment."""
