"""``python -m conceptlab ...``: the same command line as the ``conceptlab`` script."""

from conceptlab.cli import main

if __name__ == "__main__":
    main()
