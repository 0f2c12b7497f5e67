"""Actual population and housing (以房管人): houses, residents, residencies and care tags."""
