"""Request and response models (DTOs) of the HTTP API."""
