"""Training loops, evaluation and metrics shared by every milestone."""
