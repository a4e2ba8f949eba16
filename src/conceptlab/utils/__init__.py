"""Small shared helpers (atomic file writes, hashing, seeding, progress) that every room may use."""
