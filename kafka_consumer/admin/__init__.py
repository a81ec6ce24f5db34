"""Offline tools for a consumer group's operators: replaying dead letters, resetting committed offsets."""
