"""The OAuth 2.0 authorization server of each environment."""
