"""Scheduling: when a lead may be called, and the day's routine jobs (docs/scheduling.md).

Pure rules (no IO, injected `now`): `calendar` (company hours), `windows` (callee calling
windows), `callable` (`next_callable_at`), `callbacks`, `days`. Database and APScheduler
layers: `facts` (rows -> rules, `Lead.next_call_at`), `plan`, `report`, `jobs`; their queries
are functions of db/ (db/callability.py, db/planning.py, db/reports.py, db/jobs_store.py), and
nothing here imports dialer/ (the `dialer plan` / `dialer report` commands are
dialer/cli_schedule.py).
"""
