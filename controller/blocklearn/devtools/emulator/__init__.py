"""The local Kubernetes API of `blocklearn dev` and of the tests: kmock's emulator with our fidelity fixes.

Development only: production code never imports this package, and the image does not install kmock
(the `dev` extra)."""
