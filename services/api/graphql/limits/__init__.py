"""What one GraphQL request may ask for: its cost and the budget it spends
(docs/api-limits.md), its size and depth, and text free of NUL characters."""
