"""soorma-core's ``soorma.utils`` package path (:mod:`.schema_utils`)."""
