"""The web server (docs/web.md): agent desktop, supervisor console and (later) the CRM API,
served by uvicorn inside the dialer's event loop.

* `server` - the FastAPI app and `WebServer`;
* `auth` - sign-in, sessions, CSRF, roles, the sign-in rate limit;
* `agent_ws` - the agent WebSocket (`AgentSocketHub`);
* `agent_api` - the agent desktop's HTTP reads; `contact_rules` words the calling rules;
* `static/` - the pages, scripts, styles and translation catalogs.
"""
