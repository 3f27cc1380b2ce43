"""``python -m pentools.pen``."""

from pentools.pen.cli import main

if __name__ == "__main__":
    main()
