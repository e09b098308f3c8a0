"""Development tools, not in the image: the local Kubernetes API, `blocklearn dev`, the evaluation harness."""
