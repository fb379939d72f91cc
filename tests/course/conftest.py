"""Fixtures shared by the course tests."""

import dataclasses

import pytest

from dlfs.course import registry

COMING = 20              # the topic the "coming topic" tests treat as not built yet
COMING_MILESTONE = 24    # and the milestone


@pytest.fixture
def coming_topic(monkeypatch) -> int:
    """Make Topic ``COMING`` a coming (unbuilt) topic for the test, whatever the course holds
    today, and return its number."""
    topic = dataclasses.replace(registry.TOPICS[COMING], built=False)
    monkeypatch.setitem(registry.TOPICS, COMING, topic)
    return COMING


@pytest.fixture
def coming_milestone(monkeypatch) -> int:
    """Make Milestone ``COMING_MILESTONE`` not built yet for the test and return its number."""
    milestone = dataclasses.replace(registry.MILESTONES[COMING_MILESTONE], runner="")
    monkeypatch.setitem(registry.MILESTONES, COMING_MILESTONE, milestone)
    return COMING_MILESTONE
