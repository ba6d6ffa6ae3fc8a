"""What a user looks at: ``hpcopt status``, ``report`` and ``export`` (its code
templates are files in templates/)."""
