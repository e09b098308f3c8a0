"""The controller process: reconcilers that turn Blocks into embedded Examples, hosted by kopf."""
