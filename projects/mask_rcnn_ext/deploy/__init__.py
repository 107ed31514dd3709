"""Export of trained models and the runtimes that run them (docs/deploy.md)."""
