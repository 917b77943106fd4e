"""Load tests and the benchmark runner of Lien (see loadtests/README.md)."""
