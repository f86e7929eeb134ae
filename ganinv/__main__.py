"""``python -m ganinv ...``: the same as the ``ganinv`` command."""

from .cli import main

if __name__ == "__main__":
    main()
