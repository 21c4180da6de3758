"""What is computed from the store: statistics and the overview, failure groups, stuck requests, health."""
