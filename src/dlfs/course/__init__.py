"""The learner platform: topic registry, stub generation, grading, progress, milestones."""
