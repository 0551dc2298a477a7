"""Shared fixtures. Fixture modules live in tests/support/ and are registered here."""

pytest_plugins: list[str] = [
    "tests.support.servers",  # real PostgreSQL / PgBouncer / Redis / moto S3 processes
    "tests.support.openai_test_server",  # test double of an OpenAI-compatible endpoint
]
