"""``python -m evalscope``: same as the ``evalscope`` console script."""

from evalscope.cli import main

if __name__ == "__main__":
    main()
