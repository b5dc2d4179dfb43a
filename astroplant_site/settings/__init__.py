"""Settings package: `local` (the default), `test` and `production` all build on `base`."""
