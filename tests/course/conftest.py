"""Fixtures shared by the course tests."""

import dataclasses

import pytest

from dlfs.course import registry

COMING = 20        # the topic the "coming topic" tests treat as not built yet


@pytest.fixture
def coming_topic(monkeypatch) -> int:
    """Make Topic ``COMING`` a coming (unbuilt) topic for the test, whatever the course holds
    today, and return its number."""
    topic = dataclasses.replace(registry.TOPICS[COMING], built=False)
    monkeypatch.setitem(registry.TOPICS, COMING, topic)
    return COMING
