"""Scheduling: when a lead may be called, and the day's routine jobs (docs/scheduling.md).

Pure rules (no IO, injected `now`): `calendar` (company hours), `windows` (callee calling
windows), `callable` (`next_callable_at`), `callbacks`. Database and APScheduler layers:
`facts` (rows -> rules, `Lead.next_call_at`), `plan`, `report`, `jobs`, `cli`.
"""
