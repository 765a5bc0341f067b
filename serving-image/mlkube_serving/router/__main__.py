"""`python -m mlkube_serving.router`: same as `python -m mlkube_serving router`."""

from mlkube_serving.router.main import main

raise SystemExit(main())
