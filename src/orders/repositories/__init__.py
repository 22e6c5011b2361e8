"""Data access: small repositories whose methods are named by intent."""
