"""``python -m pentools.penctl``."""

from pentools.penctl.cli import main

if __name__ == "__main__":
    main()
