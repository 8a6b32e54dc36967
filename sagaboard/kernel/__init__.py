"""The saga kernel: event envelope, outbox and relay, inbox, consumer loop, broker launcher."""
