"""The ``soorma`` command line (typer): ``soorma local …`` runs the platform on this machine, ``soorma goal …``
talks to a running platform."""
