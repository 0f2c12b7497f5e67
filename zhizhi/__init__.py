"""Zhizhi (智治): a grassroots smart-governance platform for street offices, communities and grids."""
