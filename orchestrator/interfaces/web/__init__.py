"""Server-rendered pages (Jinja2, a little JavaScript, no build step) over the same services.

Signing happens in the browser: the page reads the officer's key file with WebCrypto
(``crypto.subtle``, Ed25519), signs the record's DSSE pre-authentication encoding there and
posts only the signature; the private key never leaves the browser.
"""
