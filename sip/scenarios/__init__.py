"""SIPp scenarios shipped as package data (callee network, agent phone, registrar)."""
