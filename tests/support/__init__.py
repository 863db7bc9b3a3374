"""What the tests share: servers they start, fakes they talk to, data they build, waits they use."""
