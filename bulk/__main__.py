"""``python -m bulk``: the same commands as the ``bulk`` script.

    python -m bulk --help

For an interpreter whose scripts are not on PATH (a virtualenv not
activated, a checkout run in place): the module runs the same entry point.
"""

from bulk.cli import main

main()
