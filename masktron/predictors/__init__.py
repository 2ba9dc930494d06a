"""Stateful wrappers around models: `DefaultPredictor`, `SamPredictor`, automatic masks."""
