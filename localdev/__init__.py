"""Real local processes that stand in for outside services in `make run` and the tests
(DESIGN.md, "Real components, local stand-ins"). Not imported by the product itself."""
