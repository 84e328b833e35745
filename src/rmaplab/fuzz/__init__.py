"""Random scenarios, shrinking, and fuzzing campaigns."""
