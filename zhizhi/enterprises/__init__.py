"""Enterprises (实有单位): credit codes, executives, and monthly tax and revenue records."""
