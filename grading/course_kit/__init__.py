"""The course kit: synthetic submissions and their catalogues, the demo class, course copies for tests and
benchmarks, and the graph helper shipped to students."""
