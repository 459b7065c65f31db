"""Discrete-event simulator that drives the real dialer core in virtual time."""
