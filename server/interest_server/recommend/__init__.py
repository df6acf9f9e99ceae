"""Ranking: the in-memory item index, its scanners, and ranking with explanations."""
