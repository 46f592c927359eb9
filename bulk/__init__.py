"""bulk: apply snapshot-callback changes to thousands of ApsaraVideo Live domains."""

__version__ = "0.1.0"
