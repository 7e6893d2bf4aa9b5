"""Department identities: OAuth2 client credentials, signed access tokens, the acting officer."""
