"""`python -m bitfab` and the `bitfab` console script."""

from bitfab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
