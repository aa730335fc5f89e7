"""The platform functions' shared plumbing: the FastAPI application factory and error shapes
(:mod:`soorma.functions.shared.service`) and PostgreSQL access (:mod:`soorma.functions.shared.db`).

It lives beside the functions, not in the SDK: an agent's ``sdk`` layer never carries a web framework or a database
driver it does not use.
"""
