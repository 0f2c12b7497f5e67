"""Organisations and staff: the street's departments, communities, grids, outside departments,
volunteer teams, and the users who work in them with their roles and regions."""
