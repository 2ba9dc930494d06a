"""Stateful wrappers around models: `DefaultPredictor`, `SamPredictor`, automatic mask generation."""
