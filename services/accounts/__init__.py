"""Merchants' people: users, their roles at a merchant, invitations, e-mail
verification, password hashing, sign-in throttling, browser sessions, and each
merchant's settings. Imports only core; the API's pages and OAuth server call it."""
