"""``python -m witskit``: the command line (same as the ``witskit`` command)."""

from witskit.cli import main

if __name__ == "__main__":
    main()
