"""The demo street: a realistic, reproducible 小河街道 in 拱墅区, Hangzhou.

`plan.build_plan(seed, scale)` computes every row in memory (no database), `load.load_plan(plan)`
bulk-writes it, and `checks.find_injected_errors()` finds the deliberately wrong "legacy" rows
again in the database. `logins.DEMO_LOGINS` is the table of documented demo accounts.
"""
