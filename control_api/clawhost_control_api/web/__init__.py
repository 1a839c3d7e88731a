"""The site: server-rendered pages (Jinja2), their static files, browser sessions (cookies, CSRF) and security
headers."""
