"""The Lambda layers' requirement files (``*.txt``), installed as ``soorma.infra.layers`` so the CDK app
(:mod:`soorma.infra.packaging`) finds them in a repository checkout and in an installed wheel alike; ``pins.py`` takes
their pins from the lock (``make lock``)."""
