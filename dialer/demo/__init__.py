"""The demo: a whole dialer on this machine with generated companies and leads."""

#: the most leads per company the demo's numbering plans hold: a company's numbers share a
#: short prefix (e.g. +64 9 355 5...) and a behaviour code, and 350 already ran out of unused
#: valid numbers in one of them (`dialer demo --leads-per-company` and bench/soak.py cap here)
MAX_LEADS_PER_COMPANY = 300
