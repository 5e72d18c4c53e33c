"""Jinja templates for the dataset and model cards (installed as `personalign.model_cards`)."""
