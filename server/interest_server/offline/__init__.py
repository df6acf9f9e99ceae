"""Offline tools: training, evaluation, datasets, the demo, bulk import."""
