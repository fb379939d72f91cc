"""Milestone runners: real models trained on real datasets (see ``dlfs.course.milestones``)."""
